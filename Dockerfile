# syntax=docker/dockerfile:1
# CPU image: SDK build stage, ASP.NET Core runtime image, non-root user, the embedded default model.
# deploy/run-published.sh and deploy/compose-local.sh run this same publish command and entrypoint outside a container.
# The CUDA variant is Dockerfile.cuda (same build, CUDA 13 + cuDNN 9 runtime base).

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ src/
# The host project compiles the gRPC API from proto/ (../../proto/inference/v1/inference.proto).
COPY proto/ proto/
RUN dotnet publish src/InferenceServer/InferenceServer.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
COPY models/tiny-pycoder/ ./models/tiny-pycoder/
# The checkpoint build cache (docker-compose.yml: --build-cache /cache on a named volume, which takes this folder's owner).
RUN mkdir /cache && chown app:app /cache
# The aspnet images carry the non-root "app" user (uid 1654).
USER app
# 8080: HTTP (OpenAI API, /health/*, /metrics); 8081: gRPC (h2c).
EXPOSE 8080 8081
# The image has no curl: the probe speaks HTTP/1.0 over bash's /dev/tcp. Ready = model loaded, engine progressing, not draining.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health/ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
# JSON logs on stdout; SIGTERM drains (readiness false, 503 to new requests, in-flight requests get --shutdown-timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "/app/InferenceServer.dll", "--log-format", "json"]
CMD ["--urls", "http://0.0.0.0:8080", "--grpc-port", "8081", "--shutdown-timeout", "30"]
