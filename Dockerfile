# syntax=docker/dockerfile:1
# CPU image. deploy/run-published.sh runs this same publish command and entrypoint outside a container.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ src/
RUN dotnet publish src/InferenceServer/InferenceServer.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
COPY models/tiny-pycoder/ ./models/tiny-pycoder/
# The aspnet images carry the non-root "app" user (uid 1654).
USER app
EXPOSE 8080
ENV ASPNETCORE_URLS=http://0.0.0.0:8080
ENTRYPOINT ["dotnet", "/app/InferenceServer.dll"]
