import { promises as fs, readFileSync } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { PromptPoolTokens, PromptTokens } from '../src';

/*
 * The fixtures belong to @userpref/pickle (made by goldens/make_pickle_fixtures.py with
 * torch): torch.save of a whole prompt_pool.PromptPool module whose Parameter `prompt` is (3, 8),
 * in the zip and the legacy format, with the values torch printed in prompt_pool.json.
 */
const fixtures = path.join(__dirname, '..', '..', '..', 'packages', 'pickle', 'test', 'fixtures');
const want = JSON.parse(readFileSync(path.join(fixtures, 'prompt_pool.json'), 'utf8')) as {
  parameters: { prompt: { shape: number[]; values: number[] } };
};

describe("importing the paper's prompt_pool.pt", () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it.each(['prompt_pool.pt', 'prompt_pool_legacy.pt'])('%s: the prompt parameter becomes the tokens, exactly', async (file) => {
    expect(want.parameters.prompt.shape).toEqual([3, 8]);
    const t = new PromptTokens({ length: 3 }, 1);
    t.build(8);
    await t.load(path.join(fixtures, file));
    expect(t.variables()[0].shape).toEqual([3, 8]);
    expect(Array.from(t.variables()[0].dataSync())).toEqual(want.parameters.prompt.values);
    // Ready to use: the prefix is the imported matrix for every example.
    const q = tf.zeros([2, 8]) as tf.Tensor2D;
    const { embeddings } = t.prefix({ historyMean: q, preferenceDirection: q });
    expect(Array.from(embeddings.dataSync())).toEqual([...want.parameters.prompt.values, ...want.parameters.prompt.values]);
    tf.dispose([q, embeddings]);
    t.dispose();
  });

  it.each(['prompt_pool_state_dict.pt', 'prompt_pool_state_dict_legacy.pt'])(
    '%s: torch.save(PromptPool().state_dict()) (an OrderedDict with _metadata) loads exactly',
    async (file) => {
      // made by goldens/make_torch_state_dict_fixtures.py from a real PromptPool module
      const sd = JSON.parse(readFileSync(path.join(fixtures, 'prompt_pool_state_dict.json'), 'utf8')) as {
        tensors: { prompt: { shape: number[]; values: number[] } };
      };
      const [length, dim] = sd.tensors.prompt.shape;
      const t = new PromptTokens({ length }, 1);
      t.build(dim);
      await t.load(path.join(fixtures, file));
      expect(t.variables()[0].shape).toEqual([length, dim]);
      expect(Array.from(t.variables()[0].dataSync())).toEqual(sd.tensors.prompt.values);
      t.dispose();
    },
  );

  it('a directory holding only prompt_pool.pt (as the original run folders do) loads too', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-pt-'));
    await fs.copyFile(path.join(fixtures, 'prompt_pool.pt'), path.join(dir, 'prompt_pool.pt'));
    const t = new PromptTokens({ length: 3 }, 1);
    await t.load(dir);
    expect(t.variables()[0].shape).toEqual([3, 8]);
    t.dispose();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a shape mismatch with the configured length / hidden size names both shapes', async () => {
    const file = path.join(fixtures, 'prompt_pool.pt');
    const paperLength = new PromptTokens({ length: 10 }, 1);
    await expect(paperLength.load(file)).rejects.toThrow(
      `preference tokens: tensor 'prompt' in ${file} has shape [3, 8] but the configured length x hidden size is [10, 8]`,
    );
    const wide = new PromptTokens({ length: 3 }, 1);
    wide.build(4096);
    await expect(wide.load(file)).rejects.toThrow(/has shape \[3, 8\] but the configured length x hidden size is \[3, 4096\]/);
    wide.dispose();
  });

  it('the pool refuses a single prompt, and a file that is no torch file is named', async () => {
    await expect(new PromptPoolTokens({}, 1).load(path.join(fixtures, 'prompt_pool.pt'))).rejects.toThrow(
      /holds a single prompt \(like the paper's prompt_pool.pt\), not a pool; load it with tokens 'prompt'/,
    );
    const notTorch = path.join(fixtures, 'plain_p2.pkl');
    await expect(new PromptTokens({ length: 3 }, 1).load(notTorch)).rejects.toThrow(`preference tokens: ${notTorch} is not a readable prompt_pool.pt`);
  });
});
