"""`svge export`: a checkpoint made small enough to share (no optimizer state, optional fp16)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from svge_cli import artifacts
from svge_cli.commands.common import file_output_option, refuse_binary_to_terminal
from svge_cli.console import Ui
from svge_cli.storage import store
from svge_cli.storage.outputs import refuse_overwriting_inputs


def slim(ck: artifacts.Checkpoint, fp16: bool) -> artifacts.Checkpoint:
    """The checkpoint without optimizer state; float weights halved to float16 when asked.

    Resuming needs the optimizer state; encoding, decoding and fine-tuning do not.
    """
    dtype = np.float16 if fp16 else np.float32
    state = {k: v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v for k, v in ck.state.items()}
    meta = ck.meta | {"exported_from_epoch": ck.epoch, "fp16": fp16}
    return artifacts.Checkpoint(ck.space, ck.config, state, ck.epoch, ck.history, b"", ck.arrays, meta)


@click.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@file_output_option("Where to write the slim copy; - is stdout (not a terminal).", required=True)
@click.option("--fp16", is_flag=True, help="Store weights as float16 (half the size).")
@click.pass_obj
def export_cmd(ui: Ui, checkpoint: str, output: str, fp16: bool) -> None:
    """Write a slim copy of CHECKPOINT for sharing: weights, config, split and history only.

    \b
    Example:
      svge export .svge/enas/checkpoints/run-20261128-101500/last.h5 -o enas.h5 --fp16
    """
    refuse_binary_to_terminal(output)
    refuse_overwriting_inputs({"-o": output}, {"CHECKPOINT": checkpoint})
    ck = store.load_checkpoint(checkpoint)
    store.save_checkpoint(output, slim(ck, fp16))
    if output != store.STDIO:
        ui.note(f"wrote {output} ({Path(output).stat().st_size / 1e6:.1f} MB, {'fp16' if fp16 else 'fp32'})")


COMMANDS = [export_cmd]
