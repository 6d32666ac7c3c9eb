"""Split points against the plain ResNet-18: ``python -m voting_resnet.compare --data DATA``.

A thin front end over :func:`voting_resnet.comparison.run_comparison`. The
rows: the baseline ResNet-18; test-time voting of its weights after module
1, 2 and 3 (no training); voters after module 1, 2 and 3 fine-tuned from it,
and the baseline fine-tuned the same way as their control; each voter with
soft and hard voting. Columns: test accuracy, macro F1, 95%
bootstrap interval, McNemar p against the baseline, epochs, training
images/s, wall time. Written to ``comparison.json`` row by row, and
``report.md`` with the answers and the confusion matrices at the end;
``--resume`` continues a killed run (or one stopped to go on later) from its
last finished row and epoch. Without ``--resume``, an ``--output`` that is
another run's directory (a comparison's, a training's) or a file of one is
refused in one line before anything is written.
"""
from __future__ import annotations

import sys

from csa_keras.utils.cli import entry_point
from csa_keras.utils.quiet import import_tensorflow

PROG = "python -m voting_resnet.compare"

DESCRIPTION = """Compare the Voting ResNet's split points with the plain ResNet-18 on one
train / validation / test split (the paper's Table 3). Rows:
  baseline    the ResNet-18 without a split, trained with the recipe
  test-time   the baseline's weights split after module 1, 2, 3 (no training)
  fine-tuned  the voters after module 1, 2, 3 trained further from the baseline,
              and the baseline itself trained the same way (the control, split 0);
              this project's design: the paper gives every architecture the same
              recipe from the same start (from scratch on AffectNet, from the
              AffectNet weights on RAF-DB), never the baseline's weights
  from-scratch  the voters of --scratch-split-after trained from scratch with the
              baseline's recipe and epochs (the paper's design on AffectNet)
each voter with soft and hard voting. Columns: test accuracy, macro F1, the 95%
bootstrap interval of the accuracy, the exact McNemar p-value against the baseline
on the same test images, epochs, training images/s and wall time.

Writes comparison.json (row by row), report.md and the confusion matrices of the
baseline and of the voter chosen on validation. --resume continues a killed or
stopped comparison from its last finished row and epoch (same options, except that
--split-after and --scratch-split-after may name more voters: their rows are added)."""

EPILOG = """recipes:
  converge  this project's recipe for a converged baseline (not the paper's): 16 epochs,
         batch 64, AdamW 2e-3 (weight decay 0.05) with 1 warm-up epoch then a cosine to
         zero, label smoothing 0.1, the paper's augmentation plus a horizontal flip; each
         voter 2 epochs of 6,000 images at 2e-4 on a cosine
  cpu    about 2.5 hours on two CPU cores with bfloat16: the baseline 6 epochs (batch 64,
         Adam 1e-3 x 0.75 per epoch), each voter 2 epochs of 3,000 images at 1e-4
  paper  the paper's RAF-DB recipe for every model: 40 epochs, batch 135, Adam 2e-4 x 0.95
         per epoch (for a GPU)
  smoke  seconds, for tests
"""


def build_parser():
    """The command's parser (importing it loads TensorFlow: the recipes are configs)."""
    import argparse

    from csa_keras.training.cli import add_common_arguments
    from csa_keras.utils.cli import Parser
    from voting_resnet.comparison import RECIPES
    from voting_resnet.task import add_input_options, add_schedule_options, add_split_points

    parser = Parser(prog=PROG, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                    description=DESCRIPTION)
    add_common_arguments(parser, RECIPES, "the named recipe of the comparison (below; default paper)")
    group = parser.add_argument_group("comparison")
    add_split_points(group, "the voters compared with the baseline (default 1 2 3)", voters=True)
    add_split_points(group, "voters also trained from scratch with the baseline's recipe and "
                            "epochs, the paper's design (default none)",
                     flag="--scratch-split-after", voters=True)
    add_schedule_options(group, "the baseline")
    group.add_argument("--finetune-epochs", type=int, help="epochs of each voter (0: none)")
    group.add_argument("--finetune-images", type=int,
                       help="training images per fine-tuning epoch (default of the recipe)")
    group.add_argument("--finetune-lr", type=float, help="voters' learning rate")
    add_input_options(group)
    group.add_argument("--report", action="store_true",
                       help="train nothing: complete the statistics of the comparison in --output "
                            "and write its report.md again")
    return parser


@entry_point(PROG)
def main(argv: list[str] | None = None) -> int:
    import_tensorflow()
    # After the quiet import: the engine imports TensorFlow itself.
    from csa_keras.training.cli import common_changes
    from csa_keras.training.config import pick_preset
    from csa_keras.training.rundir import default_output
    from csa_keras.utils.cli import run_main
    from csa_keras.utils.paths import check_outputs
    from voting_resnet.comparison import RECIPES, rewrite_report, run_comparison
    from voting_resnet.task import shared_changes

    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        config = pick_preset(RECIPES, args.preset).replace(
            **common_changes(args), split_after=tuple(args.split_after) if args.split_after else None,
            scratch_split_after=(tuple(dict.fromkeys(args.scratch_split_after))
                                 if args.scratch_split_after else None),
            finetune_epochs=args.finetune_epochs, finetune_images=args.finetune_images,
            finetune_lr=args.finetune_lr, **shared_changes(args)).validate()
        if args.resume and not args.output:
            raise ValueError("--resume needs the --output of the comparison to continue")
        if args.report:
            if not args.output:
                raise ValueError("--report needs the --output of the comparison to report")
            rows = rewrite_report(args.output)
            print(f"{args.output}: report.md written from {len(rows)} rows", file=sys.stderr)
            return 0
        if args.output and not args.resume:
            check_outputs({"output": args.output}, {}, folders=("output",), results=("output",))
        verbose = 0 if args.quiet else ("auto" if sys.stdout.isatty() else 2)
        output = args.output or default_output("compare")
        try:
            rows = run_comparison(config, output=output, verbose=verbose, resume=args.resume,
                                  log=lambda line: print(line, file=sys.stderr))
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"to continue, run the same command with --output {output} "
                                    "--resume") from None
        for row in rows:
            print(f"{row['training']:>10}  split {row['split_after']}  {row['voting']:>4}  "
                  f"accuracy {row['accuracy']:.4f}  [{row['ci_low']:.4f}, {row['ci_high']:.4f}]")
        return 0

    return run_main(parser, body)


if __name__ == "__main__":
    sys.exit(main())
