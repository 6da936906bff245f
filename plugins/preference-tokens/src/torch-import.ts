/**
 * Import of the paper's `prompt_pool.pt`: a torch.save of a whole nn.Module (class
 * prompt_pool.PromptPool) whose Parameter `prompt` is the (length, d_text) token matrix. The
 * pickle is read by @userpref/pickle, which never executes anything: the unknown module class
 * comes back as an inert record, and we take its `prompt` tensor. A file holding a bare tensor
 * or a state dict with a `prompt` entry is accepted too.
 */
import { promises as fs } from 'fs';
import { TorchTensor, findTensor, loadTorchFile } from '@userpref/pickle';
import type { StoredTensor } from './storage';

const FLOAT_DTYPES = new Set(['float32', 'float16', 'bfloat16', 'float64']);

export async function readPaperPromptPool(file: string): Promise<StoredTensor> {
  const bytes = await fs.readFile(file).catch((e: Error) => {
    throw new Error(`preference tokens: cannot read ${file}: ${e.message}`);
  });
  let root: unknown;
  let prompt: TorchTensor;
  try {
    root = loadTorchFile(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    prompt = root instanceof TorchTensor ? root : findTensor(root, ['prompt']);
  } catch (e) {
    throw new Error(`preference tokens: ${file} is not a readable prompt_pool.pt (a torch.save of a module with a 'prompt' parameter): ${(e as Error).message}`);
  }
  if (!FLOAT_DTYPES.has(prompt.dtype)) throw new Error(`preference tokens: 'prompt' in ${file} has dtype ${prompt.dtype}, expected a float tensor`);
  const data = prompt.data instanceof Float32Array ? prompt.data : Float32Array.from(prompt.data as ArrayLike<number>);
  return { shape: [...prompt.shape], data };
}
