"""Write a ColPali checkpoint with the real widths and a reduced depth
(random weights, bf16 safetensors, save_pretrained) for bench/encoder/run.sh.

usage: make_model.py OUT_DIR [--vision-layers N] [--text-layers N]

The tokenizer is the tiny fixture tokenizer (test/fixtures/models/tiny), whose
<image> id is 2152; the config uses that id as image_token_index and the real
vocabulary size 257216, so the embedding table has its real shape.
"""
import argparse, json, os, shutil, sys

import torch
from transformers import (ColPaliConfig, ColPaliForRetrieval, GemmaConfig,
                          PaliGemmaConfig, SiglipVisionConfig)

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--vision-layers", type=int, default=2)
ap.add_argument("--text-layers", type=int, default=2)
args = ap.parse_args()

here = os.path.dirname(os.path.abspath(__file__))
tiny = os.path.join(here, "..", "..", "test", "fixtures", "models", "tiny")
with open(os.path.join(tiny, "config.json")) as f:
    image_token = json.load(f)["vlm_config"]["image_token_index"]

torch.manual_seed(0)
vision = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304,
                            num_hidden_layers=args.vision_layers,
                            num_attention_heads=16, image_size=448, patch_size=14,
                            hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
                            vision_use_head=False)
text = GemmaConfig(hidden_size=2048, intermediate_size=16384,
                   num_hidden_layers=args.text_layers, num_attention_heads=8,
                   num_key_value_heads=1, head_dim=256, vocab_size=257216,
                   hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6)
vlm = PaliGemmaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(),
                      image_token_index=image_token, projection_dim=2048,
                      hidden_size=2048)
cfg = ColPaliConfig(vlm_config=vlm.to_dict(), embedding_dim=128)
model = ColPaliForRetrieval(cfg).eval()
model.to(torch.bfloat16).save_pretrained(args.out)

for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(tiny, name), os.path.join(args.out, name))
with open(os.path.join(tiny, "processor_config.json")) as f:
    proc = json.load(f)
proc["image_processor"]["size"] = {"height": 448, "width": 448}
proc["image_processor"]["image_seq_length"] = 1024
with open(os.path.join(args.out, "processor_config.json"), "w") as f:
    json.dump(proc, f, indent=2)
print("wrote", args.out, sum(p.numel() for p in model.parameters()) / 1e6, "M parameters")
