// Text front end: the Wan prompt cleaning, the Z-Image chat formatting and both tokenizers, checked against
// every `text_encoder` case of every fixture set under the fixture root (so another set in the same format runs
// too), plus edge cases whose expected values were produced by the reference code (ftfy 6.3.1, Python 3.11
// `html`, `regex`). Ids, masks and strings must match exactly.
import t from 'tap';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import {
  checkChatMlTemplate, encodeOptionsFromCall, fixText, promptClean, pythonHtmlUnescape, renderQwenUserTurn,
  TextTokenizer, zImagePromptText, type TokenizerCall,
} from '../../src/text/index.js';
import { fixtureRoot, loadManifest, openGoldens, type ParityCase } from '../helpers/goldens.js';

const tmp = mkdtempSync(join(tmpdir(), 'sgld-text-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

/** Fixture sets (folders with a manifest.json) that have text_encoder cases and a model folder. */
function textFixtureSets(): { set: string; cases: ParityCase[]; tokenizerDir: string }[] {
  const root = fixtureRoot();
  const sets = [];
  for (const set of readdirSync(root).sort()) {
    if (!existsSync(join(root, set, 'manifest.json'))) continue;
    const manifest = loadManifest(set);
    const cases = manifest.cases.filter((c) => c.kind === 'text_encoder');
    if (cases.length === 0 || manifest.model_dir === undefined) continue;
    sets.push({ set, cases, tokenizerDir: join(root, set, manifest.model_dir, 'tokenizer') });
  }
  return sets;
}

const sets = textFixtureSets();
const tokenizers = new Map<string, TextTokenizer>();
const tokenizerOf = (dir: string): TextTokenizer => {
  let tok = tokenizers.get(dir);
  if (!tok) tokenizers.set(dir, (tok = TextTokenizer.load(dir)));
  return tok;
};

t.test('the fixture root has the two text families', async (t) => {
  const names = sets.map((s) => s.set);
  t.ok(names.includes('wan-tiny') && names.includes('zimage-tiny'), `sets with text_encoder cases: ${names.join(', ')}`);
});

for (const { set, cases, tokenizerDir } of sets) {
  for (const c of cases) {
    const call = c.tokenizer_call as TokenizerCall;
    const expected = c.expected_input_ids as number[][];
    // Wan sets carry raw and cleaned prompts; Z-Image sets carry prompts and their chat-templated form.
    const texts = (): string[] => {
      if (Array.isArray(c.prompts_raw)) return (c.prompts_raw as string[]).map((p) => promptClean(p));
      return (c.prompts as string[]).map((p) => zImagePromptText(p));
    };

    if (Array.isArray(c.prompts_raw)) {
      t.test(`${set} ${c.id}: prompt_clean(prompts_raw) equals prompts_clean`, async (t) => {
        t.same((c.prompts_raw as string[]).map((p) => promptClean(p)), c.prompts_clean);
      });
    }
    if (Array.isArray(c.chat_templated)) {
      t.test(`${set} ${c.id}: the chat-formatted prompts equal chat_templated`, async (t) => {
        checkChatMlTemplate(tokenizerOf(tokenizerDir).chatTemplate, tokenizerDir);
        t.same((c.prompts as string[]).map((p) => zImagePromptText(p)), c.chat_templated);
      });
    }

    t.test(`${set} ${c.id}: token ids equal expected_input_ids, padded as the call asks`, async (t) => {
      const tok = tokenizerOf(tokenizerDir);
      if (typeof call.pad_token === 'string') t.equal(tok.padToken, call.pad_token, 'pad token of the call');
      const unpadded = tok.encode(texts(), { ...encodeOptionsFromCall(call), padding: false });
      t.same(unpadded.inputIds, expected, 'ids without padding');

      const { inputIds, attentionMask } = tok.encode(texts(), encodeOptionsFromCall(call));
      const width = call.max_length!;
      inputIds.forEach((row, i) => {
        const n = expected[i]!.length;
        t.equal(row.length, width, `row ${i} is max_length long`);
        t.same(row.slice(0, n), expected[i], `row ${i} starts with the expected ids`);
        t.ok(row.slice(n).every((id) => id === tok.padTokenId), `row ${i} is padded with ${tok.padToken}`);
        t.same(attentionMask[i], [...new Array<number>(n).fill(1), ...new Array<number>(width - n).fill(0)], `row ${i} mask`);
      });
    });

    t.test(`${set} ${c.id}: ids and mask equal the goldens' tensors`, async (t) => {
      const idsSpec = c.inputs.find((s) => s.name.endsWith('_input_ids'));
      const maskSpec = c.inputs.find((s) => s.name.endsWith('_attention_mask'));
      if (!idsSpec || !maskSpec) return t.fail('case lists no *_input_ids / *_attention_mask inputs');
      const goldens = openGoldens(set, c.file);
      try {
        const { inputIds, attentionMask } = tokenizerOf(tokenizerDir).encode(texts(), encodeOptionsFromCall(call));
        t.same([inputIds.length, inputIds[0]!.length], idsSpec.shape, 'shape');
        t.same(inputIds.flat(), Array.from(goldens.readBigInt64(idsSpec.name), Number), idsSpec.name);
        t.same(attentionMask.flat(), Array.from(goldens.readBigInt64(maskSpec.name), Number), maskSpec.name);
      } finally {
        goldens.close();
      }
    });
  }
}

t.test('prompt_clean: mojibake of UTF-8 read as a code page is repaired', async (t) => {
  t.equal(promptClean('cafÃ©'), 'café');
  t.equal(promptClean('Ã©tÃ© &amp; hiver'), 'été & hiver');
  t.equal(promptClean('naÃ¯ve cafÃ©\u00a0au lait'), 'naïve café au lait');
  t.equal(promptClean('voilÃ  le travail'), 'voilà le travail', 'a 0xA0 byte that became a space');
  t.equal(promptClean('Ã  la mode'), 'à la mode', '"Ã " as a word keeps its space');
  t.equal(promptClean('emoji ðŸ˜€ here'), 'emoji 😀 here');
  t.equal(promptClean('ÐŸÑ€Ð¸Ð²ÐµÑ‚ Ð¼Ð¸Ñ€'), 'Привет мир', 'Windows-1252');
  t.equal(promptClean('РџСЂРёРІРµС‚ РјРёСЂ'), 'Привет мир', 'Windows-1251');
  t.equal(promptClean('Ξ•Ξ»Ξ»Ξ·Ξ½ΞΉΞΊΞ¬'), 'Ελληνικά', 'Windows-1253');
  t.equal(promptClean('≈Å√≥d≈∫'), 'Łódź', 'MacRoman');
  t.equal(promptClean('µùÑµ£¼Φ¬₧'), '日本語', 'CP437');
  t.equal(promptClean('x\u0085y'), 'x…y', 'a C1 control read as Windows-1252, not as a line break');
});

t.test('prompt_clean: curly quotes are straightened (ftfy uncurl_quotes), except where ftfy skipped the line', async (t) => {
  t.equal(promptClean('â€œHelloâ€\u009d'), '"Hello"', 'mojibake of curly quotes');
  t.equal(promptClean('itâ€™s'), "it's");
  t.equal(promptClean('\u201ccurly\u201d'), '"curly"');
  t.equal(promptClean('&#8217;'), "'", 'entity decoded by ftfy, then uncurled');
  t.equal(promptClean('a &#8217; <b>'), 'a \u2019 <b>', "a line with '<' is left to html.unescape: stays curly");
});

t.test('prompt_clean: HTML entities, nested ones included', async (t) => {
  t.equal(promptClean('&amp;amp;'), '&');
  t.equal(promptClean('&lt;b&gt; bold'), '<b> bold');
  t.equal(promptClean('x<y &amp;amp; z'), 'x<y & z', 'ftfy keeps entities on HTML-looking lines; unescape twice does it');
  t.equal(promptClean('AT&T &copy 2024'), 'AT&T © 2024', 'legacy entity without semicolon');
  t.equal(promptClean('this&not that'), 'this¬ that', 'html.unescape decodes &not even mid-word');
  t.equal(promptClean('P&EACUTE;REZ'), 'PÉREZ', 'ftfy reads all-caps entity names');
  t.equal(promptClean('&nbsp;a&nbsp;'), 'a');
  t.equal(promptClean('a&nbsp;&nbsp;b'), 'a b');
});

t.test('prompt_clean: whitespace runs become one space, Python-style', async (t) => {
  t.equal(promptClean(' a\tb\n\nc\u00a0d\u3000e '), 'a b c d e', 'tab, newlines, NBSP, ideographic space');
  t.equal(promptClean('a\r\nb'), 'a b');
  t.equal(promptClean('Waves\u2028crash'), 'Waves crash');
  t.equal(promptClean('a\u2009b\u202fc\u205fd'), 'a b c d', 'thin, narrow and math spaces');
  t.equal(promptClean('a\u200bb'), 'a\u200bb', 'zero-width space is not whitespace to Python');
  // Without ftfy (diffusers without the package), U+001C survives inside: regex's \s lacks it, str.strip has it.
  t.equal(promptClean('a\u001cb', { ftfy: false }), 'a\u001cb');
  t.equal(promptClean('\u001ca\u001c', { ftfy: false }), 'a');
  t.equal(promptClean('a\u001cb'), 'ab', 'ftfy removes the control character');
});

t.test('prompt_clean: empty and blank prompts give the empty string', async (t) => {
  t.equal(promptClean(''), '');
  t.equal(promptClean('   \t\n'), '');
  t.equal(promptClean('\u00a0'), '');
});

t.test('prompt_clean: control characters, ligatures, widths, escapes, NFC', async (t) => {
  t.equal(promptClean('a\u0000b'), 'ab');
  t.equal(promptClean('\ufeffbom'), 'bom');
  t.equal(promptClean('\u001b[31mred\u001b[0m'), 'red', 'ANSI colour escapes');
  t.equal(promptClean('ﬁne ＬＯＵＤ'), 'fine LOUD');
  t.equal(promptClean('色调艳丽，过曝，静态'), '色调艳丽,过曝,静态', "fullwidth commas of Wan's Chinese negative prompt");
  t.equal(promptClean('e\u0301'), '\u00e9', 'NFC');
  t.equal(promptClean('a\ud800b'), 'a\ufffdb', 'lone surrogate');
});

t.test('fix_text keeps line structure and treats each line on its own', async (t) => {
  t.equal(fixText('line1 &amp;\nline2 <x> &amp;\nline3 &amp;'), 'line1 &\nline2 <x> &amp;\nline3 &amp;',
    'after a line with "<", entities are kept for the rest of the text');
  t.equal(fixText('a\r\nb'), 'a\nb');
});

t.test("html.unescape: Python's numeric and named reference rules", async (t) => {
  t.equal(pythonHtmlUnescape('&notit;'), '¬it;', 'longest legacy prefix');
  t.equal(pythonHtmlUnescape('&ampx'), '&x');
  t.equal(pythonHtmlUnescape('&amp'), '&');
  t.equal(pythonHtmlUnescape('&#128;'), '€', 'C1 reference read as Windows-1252');
  t.equal(pythonHtmlUnescape('&#0;'), '\ufffd');
  t.equal(pythonHtmlUnescape('&#1;'), '', 'forbidden code point dropped');
  t.equal(pythonHtmlUnescape('&#xD800;'), '\ufffd');
  t.equal(pythonHtmlUnescape('&#x110000;'), '\ufffd');
  t.equal(pythonHtmlUnescape('&#65;&#x42;'), 'AB');
  t.equal(pythonHtmlUnescape('&unknownentity;'), '&unknownentity;');
});

t.test('tokenizer: padding, truncation and special-token options', async (t) => {
  const wan = sets.find((s) => s.set === 'wan-tiny');
  const zimage = sets.find((s) => s.set === 'zimage-tiny');
  if (!wan || !zimage) return t.fail('wan-tiny and zimage-tiny fixtures needed');
  const t5 = tokenizerOf(wan.tokenizerDir);
  const eos = t5.tokenId('</s>')!;
  const texts = ['A cat walks on the grass, realistic style.', 'A red fox.'];
  const plain = t5.encode(texts).inputIds;
  t.equal(plain[0]!.at(-1), eos, 'T5 appends </s>');
  t.same(t5.encode(texts, { addSpecialTokens: false }).inputIds, plain.map((r) => r.slice(0, -1)), 'without </s>');

  const cut = t5.encode(texts, { truncation: true, maxLength: 5 }).inputIds;
  t.same(cut[0], [...plain[0]!.slice(0, 4), eos], 'truncation keeps room for </s>');
  t.same(t5.encode(texts, { truncation: true, maxLength: 5, addSpecialTokens: false }).inputIds[0], plain[0]!.slice(0, 5));

  const longest = t5.encode(texts, { padding: 'longest' });
  t.equal(longest.inputIds[1]!.length, plain[0]!.length, "'longest' pads to the longest row");
  t.same(longest.attentionMask[1], [...plain[1]!.map(() => 1), ...new Array(plain[0]!.length - plain[1]!.length).fill(0)]);

  const left = t5.encode(['A red fox.'], { padding: 'max_length', maxLength: 10, paddingSide: 'left' });
  t.same(left.inputIds[0], [...new Array(10 - plain[1]!.length).fill(t5.padTokenId), ...plain[1]!], 'left padding');
  t.same(left.attentionMask[0], [...new Array(10 - plain[1]!.length).fill(0), ...plain[1]!.map(() => 1)]);

  t.same(t5.encode(['']).inputIds, [[eos]], 'an empty prompt is just </s>');
  t.throws(() => t5.encode(texts, { padding: 'max_length' }), /maxLength/, 'max_length padding without a length');

  const qwen = tokenizerOf(zimage.tokenizerDir);
  t.same(qwen.encode(['<|im_start|>user\n']).inputIds[0]!.slice(0, 1), [qwen.tokenId('<|im_start|>')],
    'special tokens in the text are single ids');
  t.same(qwen.encode(['hello']).inputIds, qwen.encode(['hello'], { addSpecialTokens: false }).inputIds,
    'Qwen2 adds no special tokens');
  t.equal(qwen.decode(qwen.encode(['A cat.']).inputIds[0]!), 'A cat.', 'round trip');
});

t.test('tokenizer: loading errors name the folder or file', async (t) => {
  const missing = join(tmp, 'nowhere');
  t.throws(() => TextTokenizer.load(missing), new CheckpointError('tokenizer folder does not exist', missing));

  const wan = sets.find((s) => s.set === 'wan-tiny');
  if (!wan) return t.fail('wan-tiny fixture needed');
  const slowOnly = join(tmp, 'slow-only');
  cpSync(wan.tokenizerDir, slowOnly, { recursive: true });
  rmSync(join(slowOnly, 'tokenizer.json'));
  t.throws(() => TextTokenizer.load(slowOnly), /tokenizer\.json is missing.*slow-tokenizer/);

  const noConfig = join(tmp, 'no-config');
  cpSync(wan.tokenizerDir, noConfig, { recursive: true });
  rmSync(join(noConfig, 'tokenizer_config.json'));
  t.throws(() => TextTokenizer.load(noConfig), { name: 'CheckpointError', file: join(noConfig, 'tokenizer_config.json') });

  const broken = join(tmp, 'broken');
  cpSync(wan.tokenizerDir, broken, { recursive: true });
  writeFileSync(join(broken, 'tokenizer.json'), '{ not json');
  t.throws(() => TextTokenizer.load(broken), { name: 'CheckpointError', file: join(broken, 'tokenizer.json'),
    message: /cannot read tokenizer file as JSON/ });
});

t.test('tokenizer: special_tokens_map.json fills in a modern config and overrides a legacy one', async (t) => {
  const wan = sets.find((s) => s.set === 'wan-tiny');
  if (!wan) return t.fail('wan-tiny fixture needed');
  const withConfig = (name: string, edit: (config: Record<string, unknown>) => void): TextTokenizer => {
    const dir = join(tmp, name);
    cpSync(wan.tokenizerDir, dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    edit(config);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    return TextTokenizer.load(dir);
  };
  const filled = withConfig('modern-no-pad', (c) => { delete c.pad_token; });
  t.equal(filled.padToken, '<pad>', 'pad token taken from the map');
  const modern = withConfig('modern-eos-pad', (c) => { c.pad_token = '</s>'; });
  t.equal(modern.padToken, '</s>', 'a modern config wins over the map');
  const legacy = withConfig('legacy-eos-pad', (c) => { c.pad_token = '</s>'; delete c.added_tokens_decoder; });
  t.equal(legacy.padToken, '<pad>', 'the map overrides a legacy config');
  t.equal(legacy.padTokenId, 0);
});

t.test('chat template: Qwen3 rendering and the template check', async (t) => {
  t.equal(renderQwenUserTurn('hi', { addGenerationPrompt: true, enableThinking: false }),
    '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n', 'thinking off pre-fills a block');
  t.equal(renderQwenUserTurn('hi', { addGenerationPrompt: false, enableThinking: true }), '<|im_start|>user\nhi<|im_end|>\n');
  t.equal(zImagePromptText('  spaced  '), '<|im_start|>user\n  spaced  <|im_end|>\n<|im_start|>assistant\n',
    'content is not stripped');

  const qwen25 = "{%- if messages[0]['role'] == 'system' %}"
    + "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    + "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\\n' }}{%- endif %}"
    + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
  t.throws(() => checkChatMlTemplate(qwen25, 'qwen2.5'), /default system message/);
  const llama = "{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}";
  t.throws(() => checkChatMlTemplate(llama, 'llama'), /im_start/);
  t.throws(() => checkChatMlTemplate(undefined, 'none'), /missing/);
});
