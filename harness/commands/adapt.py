"""adapt: train the SDA adapter (MoDA or LoRA, CMSA or InfoNCE) on a data set's items."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 25


def add_parser(sub) -> None:
    p = sub.add_parser("adapt", help="train the SDA adapter for a data set (MoDA + CMSA by default)",
                       description="Adapt Qwen2.5-VL with MoDA (or LoRA) and CMSA (or InfoNCE) on the data "
                                   "set's items, as configured in configs/extractors/sda.yaml; resumes an "
                                   "interrupted run; under torchrun the processes share each step's batch. "
                                   "`extract`/`run` with the same settings reuse the adapter.")
    p.add_argument("--experts", type=int, default=None, help="MoDA experts N_e (default 8; 1, 2, 4, 8 in Figure 4)")
    p.add_argument("--loss", choices=("cmsa", "infonce"), default=None, help="cmsa (default) or infonce")
    p.add_argument("--adapter", choices=("moda", "lora"), default=None, help="moda (default) or lora")
    add_common(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from extractors.base import check_extractor_settings
    from extractors.sda.params import describe, parameter_counts
    from extractors.sda.store import adapter_meta, ensure_adapter
    from extractors.sda.train import check_settings, model_config, torchrun_ranks
    from extractors.store import make_extractor
    from protocol.config import parse_overrides
    from protocol.data.prepare import load_dataset

    chosen = {"experts": args.experts, "loss": args.loss, "adapter": args.adapter}
    overrides = parse_overrides(args.overrides) | {k: v for k, v in chosen.items() if v is not None}
    check_extractor_settings("sda", args.profile, overrides)  # before the data set is prepared
    dataset = load_dataset(args.dataset, args.profile)
    s = make_extractor("sda", dataset, args.profile, overrides).settings()
    ranks, text = torchrun_ranks(), model_config(s).text_config
    check_settings(s, dataset.n_items, ranks.world, text.hidden_size)  # before the counts are printed
    main_process = ranks.is_main
    if main_process:
        moda = parameter_counts(text, "moda", s["rank"], s["experts"], s["gate_dim"])
        lora = parameter_counts(text, "lora", s["rank"], s["experts"])
        print(f"{s['model']}: MoDA r={s['rank']} N_e={s['experts']}: {describe(moda)}")
        print(f"{s['model']}: LoRA r={s['rank']}: {describe(lora)}")
    path = ensure_adapter(dataset, s)
    if main_process:
        trained = adapter_meta(path)
        last = trained["history"][-1]
        print(f"adapter {trained['key']} ({s['adapter']}, {s['loss']}) on {dataset.name}: "
              f"{trained['steps']} steps, loss {trained['history'][0]['loss']:.4f} -> {last['loss']:.4f}, "
              f"tau {last['tau']:.4f}")
        print(f"saved: {path}")
    return 0
