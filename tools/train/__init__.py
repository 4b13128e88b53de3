"""Train a Spleeter U-Net on orca/noise mixtures made on the fly, and export it to TFLite.

Usage::

    python -m tools.train --params configs/orca-small.json --out runs/orca-small \\
        (--minutes M | --steps N) [--data /work/shared/data | --train-csv CSV --val-csv CSV] \\
        [--resume] [--seed S] [--batch-size B] [--lr 1e-3] [--loss l1] [--export-only]

Recipe: :func:`tools.unet.build_unet` (Spleeter's U-Net, widths and activations from the
params), Adam, a loss from :mod:`tools.train.losses` (``--loss``: ``l1``, the seed's: per stem the
mean
absolute difference of ``mask * mix`` and the target magnitudes, summed over stems;
``l1-level``: the same per example divided by its level; ``sdr``: negative spectral SDR of the
ratio-masked output against phase-sensitive targets, the bundled model's), batches from
:class:`tools.dataset.BlockGenerator` (train split, augmented) and a fixed validation set (val
split, same recipe, not augmented, its own seed).

Outputs under ``--out``: ``params.json``; ``log.jsonl`` (one JSON object per line:
``{"split": "train" | "val", "step", "loss", "loss_<stem>"..., "elapsed_s"}``; train losses are
means over the last ``--log-every`` steps, validation losses over the whole validation set:
always the seed's L1, plus ``sdr_<stem>`` (spectral SDR in dB, higher is better) with ``sdr``);
``ckpt/last.weights.h5`` + ``ckpt/optimizer.npz`` + ``ckpt/state.json`` (``--resume`` continues
from them with the same step counter; batch ``i`` depends only on ``(seed, i)``, so a resumed
run sees the data an uninterrupted one would); ``export/<name>.tflite`` + ``.json`` at the end
(``--export-only`` exports the last checkpoint).

Modules: :mod:`~tools.train.loop`, :mod:`~tools.train.losses`,
:mod:`~tools.train.average_checkpoints`.
"""
