# One image for the api and the worker (same entry points as the CLI: python -m service.api / service.worker).
# Only the service goes in, with only its own dependencies, declared once in requirements/service.txt
# (FastAPI, uvicorn, arq, redis, pydantic-settings, prometheus_client); the package itself goes in with
# --no-deps, so the harness (Locust, pandas, matplotlib, scipy: requirements/harness.txt) stays out.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY requirements ./requirements
COPY service ./service
RUN pip install -r requirements/service.txt && pip install --no-deps . && useradd --create-home --uid 10001 app
USER app
EXPOSE 8000
CMD ["python", "-m", "service.api"]
