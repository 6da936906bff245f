/**
 * defineContribution / definePlugin: a contribution's name is written once, and the metadata core
 * lists, the binding the container resolves and the options the factory receives all follow
 * from that one definition.
 */
import * as path from 'path';
import { Container } from 'inversify';
import {
  ConfigError,
  Logger,
  PluginOptions,
  PreferenceLoss,
  RunContext,
  assemble,
  defineContribution,
  definePlugin,
  memoryLogger,
  optionDefaults,
  optionsName,
  validateOptions,
  type OptionsOf,
  type PairLogits,
  type ReadoutTokens,
} from '../src';

/** A loss that only remembers how it was made. */
class RecordingLoss implements PreferenceLoss {
  constructor(
    readonly name: string,
    readonly options: Record<string, unknown>,
    readonly seed?: number,
  ) {}
  compute(_logits: PairLogits, _readout: ReadoutTokens): never {
    throw new Error('not computed in these tests');
  }
}

const marginSchema = {
  type: 'object',
  properties: {
    margin: { type: 'number', exclusiveMinimum: 0, default: 1, description: 'Gap.' },
    mode: { enum: ['mean', 'sum'], default: 'mean', description: 'Batch reduction.' },
    limit: { type: 'integer', minimum: 1, description: 'No default: may be absent.' },
  },
} as const;

// The option type comes from the schema: defaulted properties are present, the others optional.
type MarginOptions = OptionsOf<typeof marginSchema>;
const typed: MarginOptions = { margin: 2, mode: 'sum' };

const margin = defineContribution({
  kind: 'loss',
  name: 'margin',
  description: 'A margin loss.',
  optionsSchema: marginSchema,
  create: (options) => new RecordingLoss('margin', options),
});

const seeded = defineContribution({
  kind: 'loss',
  name: 'seeded',
  description: 'A loss that reads the run seed.',
  optionsSchema: { type: 'object', properties: { scale: { type: 'number', default: 3 } } },
  create: (options, { run, logger }) => {
    logger.info('seeded: made', { scale: options.scale });
    return new RecordingLoss('seeded', options, run.seed * options.scale);
  },
});

/** What the assembly does for the options of one selection, then loading the module. */
async function containerFor(plugin: ReturnType<typeof definePlugin>, options: Record<string, Record<string, unknown>>, run?: RunContext): Promise<Container> {
  const container = new Container();
  container.bind(Logger).toConstantValue(memoryLogger());
  if (run) container.bind<RunContext>(RunContext).toConstantValue(run);
  for (const c of plugin.contributions) {
    const key = optionsName(c.kind, c.name);
    if (options[key]) container.bind(PluginOptions).toConstantValue(validateOptions(key, c.optionsSchema, options[key])).whenNamed(key);
  }
  await container.load(plugin.containerModule);
  return container;
}

describe('defineContribution / definePlugin', () => {
  const plugin = definePlugin('@userpref/test-losses', [margin, seeded]);

  it('spells the name once: the listed contribution and the container binding carry the same name', async () => {
    expect(typed.mode).toBe('sum');
    expect(plugin.packageName).toBe('@userpref/test-losses');
    expect(plugin.contributions.map((c) => `${c.kind}:${c.name}`)).toEqual(['loss:margin', 'loss:seeded']);
    // The listed contributions are metadata only, as core and the publishing tools read them.
    expect(Object.keys(plugin.contributions[0]).sort()).toEqual(['description', 'kind', 'name', 'optionsSchema']);
    expect(plugin.contributions[0].optionsSchema).toBe(marginSchema);
    const container = await containerFor(plugin, { 'loss:margin': { margin: 2 } }, { seed: 5, baseDir: '/tmp' });
    const loss = container.get<RecordingLoss>(PreferenceLoss, { name: margin.name });
    expect(loss.name).toBe('margin');
    expect(loss.options).toEqual({ margin: 2, mode: 'mean' });
  });

  it('gives the factory validated options with the defaults filled in, even when nothing was bound', async () => {
    const container = await containerFor(plugin, {}, { seed: 5, baseDir: '/tmp' });
    expect(container.get<RecordingLoss>(PreferenceLoss, { name: 'margin' }).options).toEqual({ margin: 1, mode: 'mean' });
  });

  it('binds two contributions of one kind under their own names, each with its own options and services', async () => {
    const container = await containerFor(plugin, { 'loss:margin': { mode: 'sum' }, 'loss:seeded': { scale: 2 } }, { seed: 7, baseDir: '/tmp' });
    const a = container.get<RecordingLoss>(PreferenceLoss, { name: 'margin' });
    const b = container.get<RecordingLoss>(PreferenceLoss, { name: 'seeded' });
    expect([a.name, a.options]).toEqual(['margin', { margin: 1, mode: 'sum' }]);
    expect([b.name, b.options, b.seed]).toEqual(['seeded', { scale: 2 }, 14]);
    // Not singletons unless asked: a new instance per request, as a plain binding.
    expect(container.get(PreferenceLoss, { name: 'margin' })).not.toBe(a);
  });

  it('reads services only when the factory uses them (a loss needs no RunContext bound)', async () => {
    const container = await containerFor(plugin, {});
    expect(container.get<RecordingLoss>(PreferenceLoss, { name: 'margin' }).name).toBe('margin');
    expect(() => container.get(PreferenceLoss, { name: 'seeded' })).toThrow();
  });

  it('binds in singleton scope when the definition asks', async () => {
    const shared = defineContribution({ kind: 'loss', name: 'shared', description: 'one per container', optionsSchema: { type: 'object', properties: {} }, singleton: true, create: () => new RecordingLoss('shared', {}) });
    const container = await containerFor(definePlugin('p', [shared]), {});
    expect(container.get(PreferenceLoss, { name: 'shared' })).toBe(container.get(PreferenceLoss, { name: 'shared' }));
  });

  it('makes an implementation from a plain object with no container, validating it first', () => {
    expect((margin.create({ margin: 3 }) as RecordingLoss).options).toEqual({ margin: 3, mode: 'mean' });
    expect((margin.create() as RecordingLoss).options).toEqual({ margin: 1, mode: 'mean' });
    expect(() => margin.create({ margn: 3 } as never)).toThrow(ConfigError);
    expect(() => margin.create({ margn: 3 } as never)).toThrow(/loss 'margin': unknown option 'margn' \(expected one of: margin, mode, limit\)/);
    expect(() => margin.create({ margin: -1 })).toThrow(/loss 'margin': option 'margin' must be > 0/);
    const logger = memoryLogger();
    const loss = seeded.create({}, { run: { seed: 2, baseDir: '/' }, logger }) as RecordingLoss;
    expect(loss.seed).toBe(6);
    // A service the factory reads but the caller did not give is named.
    expect(() => seeded.create({})).toThrow(/loss 'seeded' needs services.(logger|run), which was not given/);
  });

  it('refuses a name twice, a bad name and a schema that is not an object schema', () => {
    expect(() => definePlugin('p', [margin, margin])).toThrow(/definePlugin\('p'\): loss 'margin' is defined twice/);
    const schema = { type: 'object', properties: {} } as const;
    expect(() => defineContribution({ kind: 'loss', name: 'Bad Name', description: '', optionsSchema: schema, create: () => new RecordingLoss('x', {}) })).toThrow(/loss name 'Bad Name'/);
    expect(() => defineContribution({ kind: 'optimizer' as 'loss', name: 'x', description: '', optionsSchema: schema, create: () => new RecordingLoss('x', {}) })).toThrow(/kind 'optimizer'/);
    expect(() => defineContribution({ kind: 'loss', name: 'x', description: '', optionsSchema: { type: 'array' } as never, create: () => new RecordingLoss('x', {}) })).toThrow(/optionsSchema must be/);
  });

  it('assembles a plain-JavaScript plugin written with definePlugin from a run config', async () => {
    const fixture = path.join(__dirname, 'fixtures', 'userpref-plugin-defined');
    const asm = await assemble(
      { losses: [{ package: fixture, name: 'scaled' }, { package: fixture, name: 'offset', weight: 0.5, options: { offset: 4 } }] },
      { logger: memoryLogger(), seed: 3 },
    );
    expect(asm.losses.map((l) => [l.loss.name, l.weight])).toEqual([['scaled', 1], ['offset', 0.5]]);
    expect(asm.options).toEqual({ 'loss:scaled': { scale: 2 }, 'loss:offset': { offset: 4, mode: 'a' } });
    expect((asm.losses[0].loss as unknown as { value: number }).value).toBe(6);
    await expect(assemble({ losses: [{ package: fixture, name: 'offset' }] }, { logger: memoryLogger(), seed: 3 })).rejects.toThrow(
      /plugin 'userpref-plugin-defined' loss 'offset': missing required option 'offset'/,
    );
  });
});

describe('optionDefaults', () => {
  it('fills every default, nested ones too, and leaves required options out', () => {
    const schema = {
      type: 'object',
      properties: {
        path: { type: 'string' },
        r: { type: 'integer', default: 8 },
        lora: { type: 'object', properties: { alpha: { type: 'number', default: 16 }, init: { enum: ['a', 'b'], default: 'a' } }, default: {}, additionalProperties: false },
        limit: { type: 'integer' },
      },
      required: ['path'],
    } as const;
    expect(optionDefaults(schema)).toEqual({ r: 8, lora: { alpha: 16, init: 'a' } });
    // The schema itself still requires path.
    expect(() => validateOptions('x', schema, {})).toThrow(/missing required option 'path'/);
  });
});
