// Job ids in paths (images, videos, progress sockets). The engine's ids are UUIDs; whatever the engine, an id that
// is not a short run of letters, digits, '-' and '_' cannot name any job, so it is answered 404 without reaching the
// engine: no dots, slashes, percent signs or NUL bytes travel towards anything that builds a file name.
const JOB_ID_SYNTAX = /^[A-Za-z0-9_-]{1,128}$/;

export const isJobIdSyntax = (id: string | undefined): id is string => id !== undefined && JOB_ID_SYNTAX.test(id);
