/** The paper's LoRA on IDEFICS2 (SPEC §3); the LoRA itself (PEFT semantics) is @userpref/mllm's. */
import type { LoraSettings } from '@userpref/mllm';

/** The paper's target modules (SPEC §3). */
export const PAPER_TARGET_MODULES = '.*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$';

export const PAPER_LORA: LoraSettings = { r: 8, alpha: 8, dropout: 0.1, targetModules: PAPER_TARGET_MODULES, init: 'gaussian' };
