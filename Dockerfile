# Image for the docker-compose stack: Airflow 3.3.2 on Python 3.11 plus the pipeline.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
USER airflow
WORKDIR /opt/nps
COPY requirements.txt ./
# CPU wheel of torch from PyTorch's index (on the dev machines it comes from local disk instead).
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DBT_SEND_ANONYMOUS_USAGE_STATS=false GX_ANALYTICS_ENABLED=False
