// Files compiled into the server (server/CMakeLists.txt turns them into embedded.cpp at build time).
#pragma once

namespace musicgen::server {
extern const char* const kWebIndexHtml;  // server/web/index.html
extern const char* const kOpenApiJson;   // server/openapi.json
}  // namespace musicgen::server
