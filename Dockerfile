# One image for every process of CML Fleet: web, worker, scheduler, init, and the
# CML simulator of the demo profile. The command picks the process.
FROM node:20-bookworm-slim AS spa
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY backend/ backend/
COPY --from=spa /src/backend/static backend/static
RUN pip install --no-cache-dir '.[demo]' && useradd --system --uid 1001 cmlfleet
USER cmlfleet
ENV PORT=8000
EXPOSE 8000
CMD ["cmlfleet", "web"]
