// node --import ./test/helpers/trace-imports.mjs …: appends every module the process resolves (a URL a line)
// to the file named by BELAY_TRACE_IMPORTS, to tell what a command loads.
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(${JSON.stringify(process.env.BELAY_TRACE_IMPORTS)}, r.url + '\\n');
  return r;
}`)}`,
);
