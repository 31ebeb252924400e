# One set-up path for machines without a ROS install: a virtual environment with pinned
# dependencies, the ROS 2 Kilted core wheels, and this package installed editable.
#   make demo   set everything up and run the camera-less demo
#   make test   set everything up and run the whole test suite
# On a GPU machine keep your CUDA build of torch: make TORCH_SPEC= test

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Environment every ROS process here needs: package lookup, a log directory, localhost-only
# discovery, and the Fast DDS profile that keeps large best-effort images from being dropped.
ROS_ENV := AMENT_PREFIX_PATH=$(abspath $(VENV)) \
	ROS_LOG_DIR=$(abspath $(VENV))/ros_log \
	ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST \
	FASTDDS_DEFAULT_PROFILES_FILE=$(abspath config/fastdds_large_data.xml)

.PHONY: setup test lint demo bench bench-node clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py package.xml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(if $(TORCH_SPEC),$(PY) -m pip install --quiet $(TORCH_SPEC))
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# An editable install skips data_files: register the package in the ament index by hand
	@# so get_package_share_directory('s2ml_ros') finds package.xml, launch/ and config/.
	mkdir -p $(VENV)/share/ament_index/resource_index/packages $(VENV)/share/s2ml_ros
	ln -sfn $(abspath resource/s2ml_ros) $(VENV)/share/ament_index/resource_index/packages/s2ml_ros
	ln -sfn $(abspath package.xml) $(abspath launch) $(abspath config) $(VENV)/share/s2ml_ros/
	touch $(STAMP)

test: $(STAMP)
	$(ROS_ENV) $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m pytest -m linter

demo: $(STAMP)
	$(ROS_ENV) $(PY) -m s2ml_ros.demo $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) bench/bench_model.py

bench-node: $(STAMP)
	$(ROS_ENV) $(PY) bench/bench_node.py

clean:
	rm -rf $(VENV) build *.egg-info
