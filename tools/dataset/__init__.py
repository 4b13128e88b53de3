"""Orca/noise mixtures for training and evaluation, from the shared recordings.

Usage::

    python -m tools.dataset build --data /work/shared/data --split train --out runs/data/train \\
        [--params configs/orca-small.json] [--n-examples 100] [--seconds 8] \\
        [--snr-min -10] [--snr-max 10] [--seed 0]
    python -m tools.dataset summary --data /work/shared/data [--params P]
    python -m tools.dataset check-splits --data /work/shared/data    # content overlap, ~3 min

``build`` writes ``NNNNN/{mix,orca_vocals,noise}.flac`` under ``--out``, a Spleeter CSV
``<split>.csv`` (``mix_path,orca_vocals_path,noise_path,duration``, paths relative to ``--out``:
Spleeter's ``audio_path``), ``mixtures.jsonl`` (files, offsets, gains, SNR of every example) and
``build.json`` (arguments and source files). :class:`BlockGenerator` makes the same kind of
mixtures on the fly, as ``(mix, {stem: target})`` magnitude blocks for training.

Definitions (also in ``docs/training.md``):

* **Preparation**: every file is averaged to mono, its mean removed, resampled (soxr HQ) to the
  model rate and high-passed at 20 Hz (2nd-order Butterworth run forwards and backwards: zero
  phase, 4th-order slope). Several files are over 95 % DC by energy; without this an SNR is
  mostly DC.
* **Active frames** of a call file: non-overlapping frames of ``frame_samples`` samples whose
  energy is within ``ACTIVE_THRESHOLD_DB`` (20 dB) of the file's loudest frame. The threshold
  is fixed per file, so a crop that misses the call has no active frame.
* **Input SNR** = ``10 log10(sum(call^2) / sum(noise^2))`` over the active samples of the
  mixture (the union of the active frames of its calls), so it is the SNR while calls sound.
* **Splits** follow the manifest's ``split`` column, by file, except that files known to hold
  the same recording (:data:`SAME_RECORDING`, found with ``check-splits``) are kept together:
  a recording with any file in ``train`` is entirely ``train``.

Modules: :mod:`~tools.dataset.mixtures` (preparation, pools, mixing), :mod:`~tools.dataset.blocks`
(training batches), :mod:`~tools.dataset.synthnoise` (rain, shrimp, hum, flow),
:mod:`~tools.dataset.build` (data sets on disk, split checks).
"""
