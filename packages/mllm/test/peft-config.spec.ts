/**
 * adapter_config.json is described once (PEFT_LORA_CONFIG): what save() writes, parse reads back
 * to the same settings; a config PEFT 0.21 wrote (goldens/make_peft_goldens.py) reads and writes
 * back to the same values on every key we write; what we do not implement is refused by name.
 */
import { readFileSync } from 'fs';
import * as path from 'path';
import { PEFT_LORA_CONFIG, loraConfigToJson, loraSettingsFromJson, parseAdapterConfig, type LoraSettings } from '../src';

const PEFT_WRITTEN = path.join(__dirname, '..', '..', '..', 'plugins', 'backbone-idefics2', 'test', 'fixtures', 'goldens', 'peft_tiny', 'adapter_config.json');
const peft = JSON.parse(readFileSync(PEFT_WRITTEN, 'utf8')) as Record<string, unknown>;

describe('PEFT LoraConfig, one definition both ways', () => {
  const cases: LoraSettings[] = [
    { r: 8, alpha: 8, dropout: 0.1, targetModules: '.*(q_proj|v_proj)$', init: 'gaussian', useRslora: false },
    { r: 4, alpha: 16, dropout: 0, targetModules: ['q_proj', 'k_proj'], init: 'zeros', useRslora: true },
  ];

  it.each(cases)('settings -> json -> settings is the identity (%#)', (s) => {
    const json = JSON.parse(JSON.stringify(loraConfigToJson(s, { baseModelNameOrPath: 'base' })));
    expect(loraSettingsFromJson(json, 'a.json')).toEqual({ ...s, targetModules: typeof s.targetModules === 'string' ? s.targetModules : [...s.targetModules] });
    expect(json.base_model_name_or_path).toBe('base');
  });

  it("reads PEFT's own file and writes back PEFT's value for every key it writes", () => {
    const s = parseAdapterConfig(peft, 'peft.json');
    expect(s).toEqual({ r: 8, alpha: 8, dropout: 0.1, targetModules: peft.target_modules, init: 'gaussian', useRslora: false });
    const ours = loraConfigToJson(s, { baseModelNameOrPath: peft.base_model_name_or_path as string });
    for (const [key, value] of Object.entries(ours)) expect([key, value]).toEqual([key, peft[key]]);
    // Every key the table knows is a key PEFT writes (no invented names).
    for (const [key] of PEFT_LORA_CONFIG) expect(Object.keys(peft)).toContain(key);
  });

  it('refuses what it does not implement, naming the file and key', () => {
    expect(() => loraSettingsFromJson({ ...peft, use_dora: true }, 'x.json')).toThrow("x.json: 'use_dora' is true; DoRA is not supported");
    expect(() => loraSettingsFromJson({ ...peft, rank_pattern: { q_proj: 4 } }, 'x.json')).toThrow(/'rank_pattern'.*per-module ranks/);
    expect(() => loraSettingsFromJson({ ...peft, layers_to_transform: [0] }, 'x.json')).toThrow(/'layers_to_transform'/);
    expect(() => loraSettingsFromJson({ ...peft, lora_bias: true }, 'x.json')).toThrow(/'lora_bias'/);
    expect(() => loraSettingsFromJson({ ...peft, peft_type: undefined }, 'x.json')).toThrow(/'peft_type' is missing/);
    expect(() => loraSettingsFromJson({ ...peft, r: undefined }, 'x.json')).toThrow(/'r' is missing/);
    // A newer PEFT's option we do not know, switched on: refused rather than silently dropped.
    expect(() => loraSettingsFromJson({ ...peft, eva_config: { rho: 2 } }, 'x.json')).toThrow(/'eva_config'.*not supported/);
  });

  it('accepts the absent forms other PEFT versions write', () => {
    const old = { ...peft, modules_to_save: [], rank_pattern: null, alpha_pattern: null, layers_pattern: 'layers', lora_dropout: undefined, init_lora_weights: true };
    expect(loraSettingsFromJson(old, 'old.json')).toMatchObject({ dropout: 0, init: 'zeros' });
  });
});
