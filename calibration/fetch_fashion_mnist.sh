#!/usr/bin/env bash
# Fetch Fashion-MNIST (IDX gzip files) from the Debian package `dataset-fashion-mnist` (MIT license)
# into $EDGEKIT_DATA/fashion-mnist (default ~/.cache/edgekit/fashion-mnist). No root needed unless the
# apt package lists are empty, in which case `apt-get update` is run (as root) once.
set -euo pipefail
dest="${EDGEKIT_DATA:-$HOME/.cache/edgekit}/fashion-mnist"
if [ -f "$dest/t10k-labels-idx1-ubyte.gz" ] && [ -f "$dest/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST already in $dest"; exit 0
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download dataset-fashion-mnist >/dev/null 2>&1; then
  echo "apt package lists look empty; running apt-get update" >&2
  apt-get update -qq >/dev/null
  apt-get download dataset-fashion-mnist >/dev/null
fi
dpkg-deb -x dataset-fashion-mnist_*.deb extracted
mkdir -p "$dest.tmp"
cp extracted/usr/share/datasets/fashion-mnist/*.gz "$dest.tmp/"
rm -rf "$dest"; mv "$dest.tmp" "$dest"
echo "Fashion-MNIST in $dest: $(ls "$dest" | tr '\n' ' ')"
