# Two entry points: `make demo` (the main job on a real model) and `make test` (the whole suite).
# torch is installed FIRST and pinned: any other version pulls several GB of CUDA wheels.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
export EDGEKIT_DATA ?= $(HOME)/.cache/edgekit
export HF_HUB_OFFLINE := 1

.PHONY: demo demo-train test data lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(PIP) install --quiet torch==2.13.0
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PIP) install --quiet -e ".[openvino,tflite,coreml,hf,executorch,vision,ray,ray-train,inc,graph,dev]"
	touch $@

data: $(VENV)/.installed
	bash calibration/fetch_fashion_mnist.sh
	PYTHON=$(BIN)/python bash calibration/fetch_text.sh

# The main job on a real model: pretrained ImageNet EfficientNet-Lite1, calibrated on 10 real photos, exported to
# every target at FP32 and INT8, each artifact validated on 8 other photos and benchmarked (~4 min on 2 cores).
demo: $(VENV)/.installed
	$(BIN)/edgekit export efficientnet_lite1 --target all --precision fp32,int8 \
		--calib photos:train --val photos:test --iterations 100 --warmup 10 --out runs/demo --force

# Training from scratch stays a recipe: a small ViT on Fashion-MNIST (4 min idle).
demo-train: $(VENV)/.installed data
	$(BIN)/edgekit run recipes/vit.yaml --out runs/vit --force

test: $(VENV)/.installed data
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check edgekit tests benchmarks
	$(BIN)/ruff format --check edgekit tests benchmarks

# edgekit INT8 vs NNCF / ORT quantize_static / Neural Compressor on three models (about 1 h on 2 cores)
bench: $(VENV)/.installed data
	$(BIN)/python benchmarks/peer_compare.py --model deit-s --targets onnx,openvino
	$(BIN)/python benchmarks/peer_compare.py --model minilm --targets onnx,openvino,tflite
	$(BIN)/python benchmarks/peer_compare.py --model efficientnet-lite1 --targets onnx,openvino,tflite
	$(BIN)/python benchmarks/runner_vs_benchmark_app.py

clean:
	rm -rf $(VENV) runs .pytest_cache
