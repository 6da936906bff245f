/**
 * README.md of a published package, generated from what the package itself declares: its
 * description, and for a plugin each contribution's options schema (the same schema that
 * validates a run config), so the documented options can never drift from the accepted ones.
 */
import type { Contribution, OptionsSchema, UserprefPlugin } from '@userpref/core';

type Property = OptionsSchema['properties'][string];

/** Markdown table cells cannot hold a raw `|` or a newline. */
function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function code(text: string): string {
  // A backtick inside inline code needs a longer fence.
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** `number > 0`, `"mean" | "sum"`, `string[]`, `integer 1..64`. */
export function typeOf(p: Property): string {
  let t: string;
  if (Array.isArray(p.enum)) t = (p.enum as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
  else if (p.const !== undefined) t = JSON.stringify(p.const);
  else if (Array.isArray(p.type)) t = (p.type as string[]).join(' | ');
  else if (p.type === 'array') {
    const items = p.items as Property | undefined;
    t = `${items ? typeOf(items) : 'any'}[]`;
  } else t = typeof p.type === 'string' ? p.type : 'any';
  const bounds: string[] = [];
  if (typeof p.exclusiveMinimum === 'number') bounds.push(`> ${p.exclusiveMinimum}`);
  if (typeof p.minimum === 'number') bounds.push(`>= ${p.minimum}`);
  if (typeof p.exclusiveMaximum === 'number') bounds.push(`< ${p.exclusiveMaximum}`);
  if (typeof p.maximum === 'number') bounds.push(`<= ${p.maximum}`);
  if (typeof p.minItems === 'number') bounds.push(`at least ${p.minItems} items`);
  if (typeof p.maxItems === 'number') bounds.push(`at most ${p.maxItems} items`);
  if (typeof p.minLength === 'number' && p.minLength > 0) bounds.push(`non-empty`);
  return bounds.length ? `${t} (${bounds.join(', ')})` : t;
}

export function optionsTable(schema: OptionsSchema): string {
  const entries = Object.entries(schema.properties ?? {});
  if (!entries.length) return 'No options.';
  const required = new Set(schema.required ?? []);
  const rows = entries.map(([key, p]) => {
    const def = p.default === undefined ? '' : code(JSON.stringify(p.default));
    return `| ${code(key)} | ${cell(typeOf(p))} | ${cell(def)} | ${required.has(key) ? 'yes' : 'no'} | ${cell(p.description ?? '')} |`;
  });
  return ['| Option | Type | Default | Required | Description |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

/** The run-config fragment that selects this contribution, with its defaults written out. */
export function configSnippet(packageName: string, c: Contribution): string {
  const options: Record<string, unknown> = {};
  const required = new Set(c.optionsSchema.required ?? []);
  for (const [key, p] of Object.entries(c.optionsSchema.properties ?? {})) {
    if (p.default !== undefined) options[key] = p.default;
    else if (required.has(key)) options[key] = `<${typeOf(p)}>`;
  }
  const selection: Record<string, unknown> = { package: packageName, name: c.name };
  if (c.kind === 'loss') selection.weight = 1;
  if (Object.keys(options).length) selection.options = options;
  const field = c.kind === 'loss' ? 'losses' : c.kind;
  const value = c.kind === 'loss' ? [selection] : selection;
  return JSON.stringify({ plugins: { [field]: value } }, null, 2);
}

export interface ReadmeInput {
  name: string;
  description: string;
  license: string;
  /** Packages the user installs next to this one (peer dependencies). */
  peers: string[];
  plugin?: UserprefPlugin;
  /** Exported value names, for a package that is not a plugin. */
  exportedNames?: string[];
}

const KIND_TITLE: Record<string, string> = { backbone: 'Backbone', loss: 'Loss', tokens: 'Preference tokens', dataset: 'Dataset' };

export function renderReadme(input: ReadmeInput): string {
  const out: string[] = [`# ${input.name}`, '', input.description, '', '## Install', '', '```sh', `npm install ${[input.name, ...input.peers].join(' ')}`, '```', ''];
  if (input.plugin) {
    const plugin = input.plugin;
    out.push(
      '## Use it in a run config',
      '',
      `This package is a userpref plugin: it exports \`userprefPlugin\`, and a run config selects its contributions by package and name under \`plugins\` (\`backbone\`, \`losses\`, \`tokens\`, \`dataset\`; see \`PluginsConfig\` in @userpref/core). Options are validated against the schemas below when the run is assembled: an unknown key, a wrong type or a missing required value stops the run with a message naming the option.`,
      '',
      '## Contributions',
      '',
    );
    for (const c of plugin.contributions) {
      out.push(`### ${KIND_TITLE[c.kind] ?? c.kind} \`${c.name}\``, '', c.description, '', optionsTable(c.optionsSchema), '', '```json', configSnippet(input.name, c), '```', '');
    }
  } else if (input.exportedNames?.length) {
    out.push('## API', '', `Exported values (types are in \`index.d.ts\`): ${input.exportedNames.map((n) => code(n)).join(', ')}.`, '');
  }
  out.push('## License', '', `${input.license}, see LICENSE.`, '', '<!-- Generated by tools/src/publish from package.json and the options schemas; edit those, not this file. -->', '');
  return out.join('\n');
}
