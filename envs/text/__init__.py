"""Text-generation side of cmdp-lab (the Safe RLHF setting, arXiv 2310.12773).

- `envs.text.data`: decoupled preference pairs (PKU-SafeRLHF columns), RL prompts and SFT pairs from JSONL,
  CSV or Parquet, validated row by row (standard library only; pyarrow for Parquet).
- `envs.text.corpus`: the synthetic assistant corpus and its decoupled labels, deterministic from a seed
  (standard library only).
- `envs.text.chat`: the conversation format shared by SFT, scoring and generation; padding with masks
  built from lengths (safe with pad == eos).
- `envs.text.score_model`: reward and cost score models (a Hugging Face backbone plus a scalar head), their
  losses and metrics, and `train_score_model`.
- `envs.text.make_default`: builds the embedded default from scratch (`python -m cmdp.envs.text.make_default --out DIR`).

Nothing here is imported by `envs/__init__.py`: the control side never needs transformers.
"""
