# One image for the api and the worker (same entry points as the CLI: python -m service.api / service.worker).
# Only the service goes in, with only its own dependencies (pyproject's base list: FastAPI, uvicorn, arq,
# redis, pydantic-settings); the harness (Locust, pandas, matplotlib, scipy: the `bench` extra) stays out.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
RUN pip install . && useradd --create-home --uid 10001 app
USER app
EXPOSE 8000
CMD ["python", "-m", "service.api"]
