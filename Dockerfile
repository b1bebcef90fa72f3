# The image every component of the Kubeflow / Vertex AI pipeline runs in
# (pipeline/run_kubeflow.py --image=...):
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/nvae-tfx:TAG . && docker push ...
# Base: the official TFX 1.16.0 image (Python 3.10, TFX and the TF 2.16 GPU stack, and the
# Kubeflow V2 entrypoint the compiled job calls: python -m tfx.orchestration.kubeflow.v2...).
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# Exactly the versions of the lock file, over the base image's own: what was tested here is what
# runs in the cluster. --no-deps because the lock already lists every dependency.
COPY requirements.lock /pipeline/requirements.lock
RUN python -c 'import sys; assert sys.version_info[:2] == (3, 10), sys.version' \
 && python -m pip install --no-cache-dir --no-deps -r /pipeline/requirements.lock

# The project itself, imported by class and function path (no TFX-packaged module files).
COPY pipeline /pipeline/pipeline
COPY components /pipeline/components
COPY system /pipeline/system
COPY nvae_tfx /pipeline/nvae_tfx
COPY model_code /pipeline/model_code
COPY schemas /pipeline/schemas
ENV PYTHONPATH=/pipeline \
    TF_CPP_MIN_LOG_LEVEL=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true
# ExampleGen's driver fingerprints the embedded digits where the compiled job says they are
# (pipeline/configs.py IMAGE_EMBEDDED_DATA).
RUN mkdir -p /pipeline/data \
 && ln -s "$(python -c 'import os; from nvae_tfx.data import embedded; print(os.path.dirname(embedded.data_file()))')" \
      /pipeline/data/embedded \
 && test -f /pipeline/data/embedded/mnist_5k.csv.gz
WORKDIR /pipeline
