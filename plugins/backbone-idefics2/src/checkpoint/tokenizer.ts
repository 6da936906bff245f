/**
 * A tiny Llama-style tokenizer for the random IDEFICS2 checkpoints, in the exact file format of
 * HuggingFaceM4/idefics2-8b (tokenizer.json + tokenizer_config.json + special_tokens_map.json), so
 * Python `tokenizers`/transformers and @huggingface/transformers load it through their ordinary
 * LlamaTokenizer path: BPE with byte fallback (<0x00>..<0xFF>), Metaspace "▁" pre-tokenizer with
 * prepend_scheme "first" (the `legacy: false` behaviour), no normaliser, BOS added by a template
 * post-processor, and the three IDEFICS2 added tokens appended after the base vocabulary.
 *
 * The merges are learned (classic BPE: most frequent pair, ties broken by the pair's text) from a
 * small built-in corpus of the SPEC §2 chat turns and common Pick-a-Pic prompt words, so the words
 * of our prompts become few tokens; anything else still encodes through single characters or the
 * byte-fallback tokens. "▁+" and "▁-" (what the model emits after "Assistant:") are forced to be
 * single tokens, and "+" / "-" are single characters of the alphabet.
 */

export const SPIECE = '\u2581';
export const UNK = '<unk>';
export const BOS = '<s>';
export const EOS = '</s>';
export const FAKE_IMAGE_TOKEN = '<fake_token_around_image>';
export const IMAGE_TOKEN = '<image>';
export const END_OF_UTTERANCE = '<end_of_utterance>';

/** The IDEFICS2 chat template (processor_config.json / tokenizer_config.json of idefics2-8b). */
export const IDEFICS2_CHAT_TEMPLATE =
  "{% for message in messages %}{{message['role'].capitalize()}}" +
  "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}" +
  "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}" +
  "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n" +
  "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/** Characters that get their own token; everything else falls back to UTF-8 byte tokens. */
const ALPHABET = [
  SPIECE,
  ...'abcdefghijklmnopqrstuvwxyz',
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
  ...'0123456789',
  ...".,'?!:;-+()/&\"=",
];

/** Merges that must exist whatever the corpus says (the readout tokens). */
const FORCED_MERGES: Array<[string, string]> = [
  [SPIECE, '+'],
  [SPIECE, '-'],
];

/** Prompts in the style of Pick-a-Pic captions: the words the merges should cover. */
const CORPUS_PROMPTS = [
  'a photo of a cat sitting on a chair',
  'a portrait of a woman with red hair, digital art',
  'a beautiful landscape with mountains and a lake at sunset',
  'a dog playing in the snow, realistic, highly detailed',
  'an astronaut riding a horse on the moon',
  'a painting of a city at night in the style of van gogh',
  'a cute robot in a garden, 3d render, 4k',
  'a man standing in front of a house, oil painting',
  'a red car on the street, cinematic lighting',
  'a bowl of fruit on a wooden table, still life',
  'anime girl with blue eyes, trending on artstation',
  'a castle on a hill under a starry sky, fantasy art',
  'a cat and a dog in the style of a cartoon',
  'an old man with a beard, black and white photo',
  'a forest with a river, concept art, 8k',
  'a blue bird on a tree branch, watercolor',
];

/** The SPEC §2 turns, rendered the way the processor feeds them to the tokenizer. */
function corpusSections(): string[] {
  const sections: string[] = [];
  for (const prompt of CORPUS_PROMPTS) {
    // First turn of a sequence: starts at offset 0, so Metaspace prepends "▁".
    sections.push(`${SPIECE}User:`);
    // After <fake_token_around_image> the processor inserts a space (transformers >= 4.5x).
    sections.push(` The prompt is '${prompt}' Score for this image?`);
    sections.push(' Score for this image?');
    // Later turns start right after <end_of_utterance>: "\nAssistant: +" / "\nUser:".
    sections.push('\nAssistant: +', '\nAssistant: -', '\nUser:', '\nAssistant:');
  }
  return sections.map((s) => s.replace(/ /g, SPIECE));
}

/** Splits a pre-tokenized section into BPE training words: "▁" starts a word, other symbols break. */
function trainingWords(section: string, alphabet: Set<string>): string[] {
  const words: string[] = [];
  let cur = '';
  for (const ch of section) {
    if (!alphabet.has(ch)) {
      if (cur) words.push(cur);
      cur = '';
      continue;
    }
    if (ch === SPIECE && cur) {
      words.push(cur);
      cur = '';
    }
    cur += ch;
  }
  if (cur) words.push(cur);
  return words;
}

export interface LearnedBpe {
  /** Base vocabulary (without the IDEFICS2 added tokens), in id order. */
  readonly tokens: string[];
  readonly merges: Array<[string, string]>;
}

/**
 * Learns `numMerges` BPE merges (after the forced ones) over the built-in corpus. Deterministic:
 * the most frequent adjacent pair wins, ties go to the lexicographically smallest "a b".
 */
export function learnBpe(numMerges: number): LearnedBpe {
  const alphabet = new Set(ALPHABET);
  const freq = new Map<string, number>();
  for (const section of corpusSections()) {
    for (const w of trainingWords(section, alphabet)) freq.set(w, (freq.get(w) ?? 0) + 1);
  }
  // Each word as its current symbol sequence.
  const words = [...freq.entries()].map(([w, n]) => ({ symbols: [...w], n }));
  const merges: Array<[string, string]> = [];
  const applyMerge = (a: string, b: string) => {
    for (const w of words) {
      const s = w.symbols;
      for (let i = 0; i < s.length - 1; i++) {
        if (s[i] === a && s[i + 1] === b) s.splice(i, 2, a + b);
      }
    }
    merges.push([a, b]);
  };
  for (const [a, b] of FORCED_MERGES) applyMerge(a, b);
  while (merges.length < FORCED_MERGES.length + numMerges) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i < w.symbols.length - 1; i++) {
        const key = `${w.symbols[i]} ${w.symbols[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + w.n);
      }
    }
    let best: string | null = null;
    let bestN = 1;
    for (const [key, n] of counts) {
      if (n > bestN || (n === bestN && best !== null && key < best)) {
        best = key;
        bestN = n;
      }
    }
    if (best === null) break; // no pair occurs twice: the corpus is exhausted
    const [a, b] = best.split(' ');
    applyMerge(a, b);
  }
  const bytes = Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`);
  const tokens = [UNK, BOS, EOS, ...bytes, ...ALPHABET, ...merges.map(([a, b]) => a + b)];
  if (new Set(tokens).size !== tokens.length) throw new Error('tokenizer vocabulary has duplicate tokens');
  return { tokens, merges };
}

export interface TokenizerFiles {
  'tokenizer.json': unknown;
  'tokenizer_config.json': unknown;
  'special_tokens_map.json': unknown;
}

export interface TokenizerLayout {
  readonly files: TokenizerFiles;
  /** Total vocabulary including the added tokens: text_config.vocab_size. */
  readonly vocabSize: number;
  readonly ids: { unk: number; bos: number; eos: number; pad: number; fakeImage: number; image: number; endOfUtterance: number };
}

const addedToken = (id: number, content: string) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

/**
 * The three tokenizer files for a vocabulary of `baseVocabSize` BPE tokens (bytes, alphabet and
 * merges; the IDEFICS2 added tokens come after it, like ids 32000-32002 of idefics2-8b).
 */
export function buildTokenizer(baseVocabSize: number, modelMaxLength: number): TokenizerLayout {
  const fixed = 3 + 256 + ALPHABET.length + FORCED_MERGES.length;
  if (baseVocabSize < fixed) throw new Error(`baseVocabSize ${baseVocabSize} is below the ${fixed} tokens every vocabulary needs`);
  const bpe = learnBpe(baseVocabSize - fixed);
  if (bpe.tokens.length !== baseVocabSize) {
    throw new Error(`the tokenizer corpus yields only ${bpe.tokens.length} tokens, fewer than the requested ${baseVocabSize}`);
  }
  const vocab: Record<string, number> = {};
  bpe.tokens.forEach((t, i) => (vocab[t] = i));
  const fakeImage = baseVocabSize;
  const image = baseVocabSize + 1;
  const endOfUtterance = baseVocabSize + 2;
  const added = [
    addedToken(0, UNK),
    addedToken(1, BOS),
    addedToken(2, EOS),
    addedToken(fakeImage, FAKE_IMAGE_TOKEN),
    addedToken(image, IMAGE_TOKEN),
    addedToken(endOfUtterance, END_OF_UTTERANCE),
  ];
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: SPIECE, prepend_scheme: 'first', split: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: BOS, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: BOS, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: BOS, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [BOS]: { id: BOS, ids: [1], tokens: [BOS] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPIECE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: UNK,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const addedDecoder: Record<string, unknown> = {};
  for (const t of added) {
    const { id, ...rest } = t;
    addedDecoder[String(id)] = { content: rest.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  const specials = [FAKE_IMAGE_TOKEN, IMAGE_TOKEN, END_OF_UTTERANCE];
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedDecoder,
    additional_special_tokens: specials,
    bos_token: BOS,
    chat_template: IDEFICS2_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: EOS,
    legacy: false,
    model_max_length: modelMaxLength,
    pad_token: UNK,
    processor_class: 'Idefics2Processor',
    sp_model_kwargs: {},
    spaces_between_special_tokens: false,
    tokenizer_class: 'LlamaTokenizer',
    unk_token: UNK,
    use_default_system_prompt: true,
  };
  const special = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  const specialTokensMap = {
    additional_special_tokens: specials,
    bos_token: special(BOS),
    eos_token: special(EOS),
    pad_token: special(UNK),
    unk_token: special(UNK),
  };
  return {
    files: { 'tokenizer.json': tokenizerJson, 'tokenizer_config.json': tokenizerConfig, 'special_tokens_map.json': specialTokensMap },
    vocabSize: baseVocabSize + 3,
    ids: { unk: 0, bos: 1, eos: 2, pad: 0, fakeImage, image, endOfUtterance },
  };
}
