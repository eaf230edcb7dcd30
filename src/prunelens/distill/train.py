"""Fine-tune one student on one training set with transformers' ``Trainer``.

Full fine-tuning keeps float32 weights (on CUDA, and on CPU with ``cpu_bf16``, the forward and
backward passes run in bf16 autocast: bf16 weights would round most of AdamW's small updates away);
LoRA trains float32 adapters (``peft`` casts them) over base weights held in bf16 on CUDA, and merges
them at the end. Seeds fixed; checkpoints every ``save_steps`` under ``OUT/checkpoints``
(safetensors), and a killed training resumes from the last one; the finished student is saved to
``OUT/final`` (safetensors and tokenizer).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .config import DistillConfig
from .data import IGNORE, encode

FINAL = "final"
LOG_STEPS = 5  # the loss curve's resolution


def train_student(rows: pd.DataFrame, out: str | Path, config: DistillConfig, seed: int,
                  show_progress: bool = True) -> dict:
    """Train a student on ``rows`` into ``out``; returns its training record: ``seconds``, ``steps``,
    ``epochs``, ``examples``, ``batch_size``, ``bf16`` (autocast), ``final_loss`` and ``loss_curve``
    (step, epoch, loss and learning rate every ``logging_steps``)."""
    import torch
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from ..models import resolve_model_path

    out = Path(out)
    set_seed(seed)
    cuda = torch.cuda.is_available()
    path = resolve_model_path(config.student)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if cuda and config.lora else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if config.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    dataset = [encode(tokenizer, row, getattr(model.config, "max_position_embeddings", None))
               for row in rows.itertuples()]
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size, lr_scheduler_type="cosine", warmup_steps=0.05,
        seed=seed, data_seed=seed, save_strategy="steps", save_steps=config.save_steps, save_total_limit=1,
        logging_steps=LOG_STEPS, report_to="none", use_cpu=not cuda, bf16=cuda or config.cpu_bf16,
        disable_tqdm=not show_progress, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE))
    start = time.perf_counter()
    last = get_last_checkpoint(str(out / "checkpoints")) if (out / "checkpoints").is_dir() else None
    result = trainer.train(resume_from_checkpoint=last)
    if config.lora:
        model = model.merge_and_unload()
    model.save_pretrained(out / FINAL)
    tokenizer.save_pretrained(out / FINAL)
    curve = [{"step": log["step"], "epoch": log.get("epoch"), "loss": log["loss"],
              "learning_rate": log.get("learning_rate")} for log in trainer.state.log_history if "loss" in log]
    return {"seconds": time.perf_counter() - start, "steps": result.global_step, "epochs": config.epochs,
            "examples": len(dataset), "batch_size": config.batch_size, "bf16": args.bf16,
            "final_loss": curve[-1]["loss"] if curve else float("nan"), "loss_curve": curve}
