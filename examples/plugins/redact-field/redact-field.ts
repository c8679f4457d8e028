/**
 * An Outrigger filter plugin (docs/plugins.md): replaces the value of a
 * string field, wherever it appears in a gRPC response message (nested
 * messages and lists included), before the message reaches the client.
 * With the Bookstore: `field: author` hides every book's author from
 * GetBook, ListBooks and WatchShelf answers.
 *
 * It is TypeScript: the sidecar compiles it on load (tsx). It imports types
 * only, so it needs nothing at run time but the sidecar.
 */
import type { DescMessage, Message } from '@bufbuild/protobuf';
import type { FilterPlugin, PluginConfigProblem } from 'outrigger/plugin';

interface Config {
  /** The field's proto name (`author`) or JSON name. */
  readonly field: string;
  /** What it becomes. Default "[redacted]". */
  readonly replacement?: string;
}

const plugin: FilterPlugin<Config> = {
  validate(config): PluginConfigProblem[] {
    const problems: PluginConfigProblem[] = [];
    if (typeof config.field !== 'string' || config.field === '') problems.push({ path: 'field', message: 'required: the name of a string field' });
    if (config.replacement !== undefined && typeof config.replacement !== 'string') problems.push({ path: 'replacement', message: 'must be a string' });
    for (const k of Object.keys(config)) if (k !== 'field' && k !== 'replacement') problems.push({ path: k, message: 'unknown field' });
    return problems;
  },

  compile(config) {
    const replacement = config.replacement ?? '[redacted]';
    return {
      // The message is changed in place; the sidecar re-encodes it.
      onResponseMessage(msg, ctx) {
        redact(ctx.method.output, msg, config.field, replacement);
      },
    };
  },
};

export default plugin;

/** Replaces `field` in `msg` and every message below it; returns how many values it replaced. */
function redact(desc: DescMessage, msg: Message, field: string, replacement: string): number {
  let n = 0;
  const m = msg as unknown as Record<string, unknown>;
  for (const f of desc.fields) {
    // A oneof member's value sits in the oneof's {case, value}.
    const holder = f.oneof === undefined ? m : (m[f.oneof.localName] as Record<string, unknown>);
    const key = f.oneof === undefined ? f.localName : 'value';
    if (f.oneof !== undefined && holder['case'] !== f.localName) continue;
    const v = holder[key];
    if ((f.name === field || f.jsonName === field) && f.fieldKind === 'scalar' && typeof v === 'string') {
      if (v !== '') {
        holder[key] = replacement;
        n++;
      }
    } else if (f.fieldKind === 'message' && v !== undefined) {
      n += redact(f.message, v as Message, field, replacement);
    } else if (f.fieldKind === 'list' && f.listKind === 'message') {
      for (const item of v as Message[]) n += redact(f.message, item, field, replacement);
    }
  }
  return n;
}
