# The gateway image used by docker-compose.yml for web, worker and scheduler alike.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 GATEWAY_DATA_DIR=/data GATEWAY_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY jobs jobs
COPY datazen datazen
COPY dataflux dataflux
COPY manage.py ./
RUN pip install --no-cache-dir .
VOLUME /data
EXPOSE 9559
CMD ["python", "-m", "gateway.fleet", "web"]
