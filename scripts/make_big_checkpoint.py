#!/usr/bin/env python3
"""Writes a synthetic Llama-shaped Hugging Face folder (config.json, model.safetensors, tokenizer.json)
with seeded random f32 weights, for testing conversion of a checkpoint larger than the memory a run
may use (docs/performance.md, "Converting a checkpoint bigger than memory").

    scripts/make_big_checkpoint.py OUT_DIR [--layers 6] [--hidden 4096] [--intermediate 14336]
                                            [--heads 32] [--kv-heads 8] [--vocab 32000] [--seed 0]

The defaults give 6.5 GB (1.63 G weights). Tensors are generated and written one at a time, so the
script itself needs about one tensor of memory. The tokenizer is the tiny-llama fixture's (512 ids,
within the vocabulary), so the output runs; the weights are noise (N(0, 0.02)), not a language model.
"""
import argparse, json, os, shutil, struct, sys
import numpy as np

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--intermediate", type=int, default=14336)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    h, f, hd = a.hidden, a.intermediate, a.hidden // a.heads
    kv = a.kv_heads * hd
    tensors = [("model.embed_tokens.weight", (a.vocab, h))]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        tensors += [(p + "input_layernorm.weight", (h,)), (p + "self_attn.q_proj.weight", (h, h)),
                    (p + "self_attn.k_proj.weight", (kv, h)), (p + "self_attn.v_proj.weight", (kv, h)),
                    (p + "self_attn.o_proj.weight", (h, h)), (p + "post_attention_layernorm.weight", (h,)),
                    (p + "mlp.gate_proj.weight", (f, h)), (p + "mlp.up_proj.weight", (f, h)),
                    (p + "mlp.down_proj.weight", (h, f))]
    tensors += [("model.norm.weight", (h,)), ("lm_head.weight", (a.vocab, h))]
    header, off = {}, 0
    for name, shape in tensors:
        n = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    path = os.path.join(a.out, "model.safetensors")
    with open(path, "wb") as fo:
        fo.write(struct.pack("<Q", len(hb)) + hb)
        for k, (name, shape) in enumerate(tensors):
            if len(shape) == 1:
                v = np.ones(shape, dtype=np.float32)
            else:
                v = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype("<f4")
            fo.write(v.tobytes())
            print(f"\r{k + 1}/{len(tensors)} {name}", end="", file=sys.stderr)
    print(file=sys.stderr)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h,
              "intermediate_size": f, "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
              "num_hidden_layers": a.layers, "vocab_size": a.vocab, "max_position_embeddings": 4096,
              "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": False,
              "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32"}
    with open(os.path.join(a.out, "config.json"), "w") as fo:
        json.dump(config, fo, indent=1)
    here = os.path.dirname(os.path.abspath(__file__))
    shutil.copy(os.path.join(here, "..", "Fixtures", "tiny-llama", "tokenizer.json"), os.path.join(a.out, "tokenizer.json"))
    print(f"{path}: {os.path.getsize(path)} bytes, {sum(int(np.prod(s)) for _, s in tensors)} weights")

if __name__ == "__main__":
    main()
