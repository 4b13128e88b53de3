#!/bin/bash
# Checks of the complement candidate (model card, Tried 2026-12-01 (fourth session)).
# Usage: check.sh RUN NAME [PARAMS]   (RUN: a tools.train out dir with ckpt/; NAME: file stem for the reports; PARAMS: its training params)
cd /work/main && source .venv/bin/activate
RUN=$1; NAME=$2; P=${3:-configs/orca-unet-complement.json}; O=runs/compl-check/$NAME; B=streamsep/data; mkdir -p $O
nice python -m tools.train --params $P --out $RUN --export-only > $O/export.log 2>&1
nice python -m tools.train --params $P --out $RUN --export-only \
  --precision int8-dynamic --name orca_unet_int8 >> $O/export.log 2>&1
cp $RUN/export/orca_unet.tflite $O/$NAME.tflite; cp $RUN/export/orca_unet_int8.tflite $O/${NAME}_int8.tflite
cp $RUN/export/orca_unet.json $O/$NAME.json
nice python -m tools.evaluate.recordings tests/fixtures/audio/acoustic-separation_20181202_25sec.flac \
  --candidate $NAME $O/$NAME.json $O/$NAME.tflite --out $O/reference.json > $O/reference.txt 2>&1
echo reference > $O/PROGRESS
M="$B/orca_unet.tflite $O/$NAME.tflite $O/${NAME}_int8.tflite"
for seed in 4 5; do
  nice python -m tools.evaluate --params $B/orca_unet.json --model $M \
    --data ../shared/data --split val --snrs -5 0 5 --n-per-snr 8 --seed $seed --out $O/val-s$seed > $O/val-s$seed.log 2>&1
  echo val-s$seed >> $O/PROGRESS
done
nice python tools/evaluate_detection.py --data ../shared/data --params $O/$NAME.json --model $O/$NAME.tflite \
  --out $O/detection.md > $O/detection.log 2>&1
echo detection >> $O/PROGRESS
python -m tools.bench --params $B/orca_unet.json --model $B/orca_unet.tflite --runs 5 --out $O/bench-shipped > $O/bench-shipped.log 2>&1
python -m tools.bench --params $O/$NAME.json --model $O/$NAME.tflite --int8-model $O/${NAME}_int8.tflite --runs 5 --out $O/bench > $O/bench.log 2>&1
echo done >> $O/PROGRESS
