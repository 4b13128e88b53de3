"""Evaluate separation models and baselines on seeded validation mixtures and labelled clips.

Usage::

    python -m tools.evaluate --params P.json --model M.tflite [M2.tflite ...] \\
        --data /work/shared/data --split val --snrs -5 0 5 --n-per-snr 8 --seed 0 \\
        --out runs/eval/NAME [--seconds 8] [--level-db -30] [--chunk 1024] [--no-labeled]

Mixtures: for SNR bucket ``j`` and example ``k``, :func:`tools.dataset.make_mixture` with
``numpy.random.default_rng([seed, j, k])``: ``--seconds`` of one val noise file (rotating), 1-3
val call crops of 1-4 s, no augmentation, mix RMS ``--level-db`` dBFS. Every method is scored
against the references through the model's DC-blocking high-pass (``highpass_hz``), the input
the engine itself separates.

Methods: ``mix`` (the mix as estimate of both stems: the SI-SDRi reference), ``passthrough``
(orca = mix, noise = silence), ``irm-F`` and ``irm-full`` (ideal ratio masks
``|S_i|^p / sum_j |S_j|^p`` from the true references with the model's STFT, ``p =
separation_exponent``; ``irm-F`` keeps only the model's ``F`` bins and its ``mask_extension``:
the ceiling of any model with these params), ``noisereduce-stationary`` and
``noisereduce-nonstationary`` (spectral gating, default settings; noise = mix - output), and per
model ``<name> offline`` (``Separator.separate``, default ``StreamSettings``), ``<name>
offline spleeter-segments`` (``StreamSettings.spleeter()``: Spleeter's whole, non-overlapping
blocks) and ``<name> streaming`` (``BlockSeparator`` fed ``--chunk``-sample chunks, cropped by
``latency_samples``).

Metrics per stem (:mod:`tools.evaluate.metrics`): SI-SDR, SI-SDRi (over the mix), SDR, MAD
(Spleeter's
absolute difference on ``F``-bin magnitude spectrograms), and ``% IRM``: the method's mean
SI-SDRi as a percentage of ``irm-F``'s. Labelled clips: ROC AUC of the 0.5-15 kHz band energy of
the mix, of each method's orca stem, and of the orca/mix energy ratio, calls vs no-calls.
Writes ``report.md`` (also printed) and ``results.json`` under ``--out``.

Modules: :mod:`~tools.evaluate.methods`, :mod:`~tools.evaluate.run`, :mod:`~tools.evaluate.report`,
:mod:`~tools.evaluate.metrics`; beside them :mod:`~tools.evaluate.recordings` (a candidate's orca
stem on real recordings without references, per second in two bands).
"""
