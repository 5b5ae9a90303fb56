// Discovery (spec 2.2 - 2.5): the one loaded model, as SGLang describes it.
import { ApiError, type ModelInfo, type TaskType } from '../actors/api.js';
import type { ServerContext } from './context.js';
import type { Route } from './router.js';

const TAKES_IMAGE_INPUT: ReadonlySet<TaskType> = new Set(['I2V', 'TI2V', 'I2I', 'TI2I']);
const MAKES_IMAGES: ReadonlySet<TaskType> = new Set(['T2I', 'I2I', 'TI2I']);

/** The diffusion extension fields shared by /models and the model card. */
function diffusionFields(m: ModelInfo): Record<string, unknown> {
  return {
    num_gpus: m.numGpus,
    task_type: m.taskType,
    dit_precision: m.ditPrecision,
    vae_precision: m.vaePrecision,
    ...(m.pipelineName !== undefined ? { pipeline_name: m.pipelineName } : {}),
    ...(m.pipelineClass !== undefined ? { pipeline_class: m.pipelineClass } : {}),
  };
}

export function modelCard(m: ModelInfo): Record<string, unknown> {
  return {
    id: m.id, object: 'model', created: m.createdAt, owned_by: 'sgld', root: m.id, parent: null, max_model_len: null,
    ...diffusionFields(m),
  };
}

export function modelRoutes({ engine }: ServerContext): Route[] {
  return [
    {
      method: 'GET', pattern: '/models', auth: 'normal',
      handler: ({ reply }) => { const m = engine.model(); reply.json(200, { model_path: m.modelPath, ...diffusionFields(m) }); },
    },
    {
      method: 'GET', pattern: '/v1/models', auth: 'normal',
      handler: ({ reply }) => reply.json(200, { object: 'list', data: [modelCard(engine.model())] }),
    },
    {
      // `{model+}`: ids contain '/', sent raw or percent-encoded (the SDK sends %2F); the router decodes.
      method: 'GET', pattern: '/v1/models/{model+}', auth: 'normal',
      handler: ({ reply, params }) => {
        const m = engine.model();
        if (params.model !== m.id) {
          // The one OpenAI-shaped error SGLang itself produces (spec 2.4), kept exactly, type included.
          throw new ApiError(404, `The model '${params.model}' does not exist`, {
            type: 'invalid_request_error', param: 'model', code: 'model_not_found',
          });
        }
        reply.json(200, modelCard(m));
      },
    },
    {
      method: 'GET', pattern: '/v1/model_info', auth: 'normal',
      handler: ({ reply }) => reply.json(200, { model_path: engine.model().modelPath }),
    },
    {
      method: 'GET', pattern: '/model_info', auth: 'normal',
      handler: ({ reply }) => {
        const m = engine.model();
        reply.json(200, {
          model_path: m.modelPath,
          is_generation: true,
          model_type: 'diffusion',
          architectures: m.pipelineClass !== undefined ? [m.pipelineClass] : null,
          has_image_understanding: TAKES_IMAGE_INPUT.has(m.taskType),
          has_audio_understanding: false,
          task_type: m.taskType,
          is_image_gen: MAKES_IMAGES.has(m.taskType),
        });
      },
    },
    {
      method: 'GET', pattern: '/server_info', auth: 'normal',
      handler: ({ reply }) => {
        const m = engine.model();
        reply.json(200, { model_path: m.modelPath, served_model_name: m.id, tp_size: m.tpSize, dp_size: m.dpSize, version: engine.server().version });
      },
    },
  ];
}
