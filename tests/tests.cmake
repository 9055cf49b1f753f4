musicgen_add_test(test_parity SOURCES test_parity.cpp golden_runs.cpp
  LIBS musicgen musicgen_generation musicgen_models musicgen_tokenizer nlohmann_json::nlohmann_json)
musicgen_add_test(test_kernels SOURCES test_kernels.cpp LIBS musicgen_generation musicgen_kernels)
musicgen_add_test(test_encodec SOURCES test_encodec.cpp LIBS musicgen_models)
musicgen_add_test(test_cli SOURCES test_cli.cpp LIBS musicgen musicgen_audio nlohmann_json::nlohmann_json)
target_compile_definitions(test_cli PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>"
  MUSICGEN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_dependencies(test_cli musicgen_cli)
musicgen_add_test(test_audio_input SOURCES test_audio_input.cpp
  LIBS musicgen_audio musicgen_models PkgConfig::SNDFILE)
musicgen_add_test(test_longform SOURCES test_longform.cpp
  LIBS musicgen_generation musicgen_models musicgen_tokenizer)
musicgen_add_test(test_quant_kernels SOURCES test_quant_kernels.cpp LIBS musicgen_kernels)
musicgen_add_test(test_chroma SOURCES test_chroma.cpp LIBS musicgen_models musicgen_audio)
# Hub downloads against an in-process fake hub on 127.0.0.1 (cpp-httplib), plus the CLI's pull/list/info.
find_package(OpenSSL REQUIRED)
pkg_check_modules(CPP_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
musicgen_add_test(test_hub SOURCES test_hub.cpp
  LIBS musicgen PkgConfig::CPP_HTTPLIB OpenSSL::Crypto nlohmann_json::nlohmann_json)
target_compile_definitions(test_hub PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>")
add_dependencies(test_hub musicgen_cli)
musicgen_add_test(test_random_model SOURCES test_random_model.cpp
  LIBS musicgen nlohmann_json::nlohmann_json PkgConfig::SENTENCEPIECE)
target_compile_definitions(test_random_model PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>")
add_dependencies(test_random_model musicgen_cli)
musicgen_add_test(test_bench SOURCES test_bench.cpp LIBS nlohmann_json::nlohmann_json)
target_compile_definitions(test_bench PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>")
add_dependencies(test_bench musicgen_cli)
musicgen_add_test(test_modes SOURCES test_modes.cpp golden_runs.cpp
  LIBS musicgen musicgen_models nlohmann_json::nlohmann_json)
musicgen_add_test(test_quant_quality SOURCES test_quant_quality.cpp
  LIBS musicgen_generation musicgen_models musicgen_tokenizer)
musicgen_add_test(test_quantized_file SOURCES test_quantized_file.cpp LIBS musicgen)
target_compile_definitions(test_quantized_file PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>")
add_dependencies(test_quantized_file musicgen_cli)
if(MUSICGEN_HAVE_VULKAN)
  musicgen_add_test(test_vulkan NO_LEAK_CHECK SOURCES test_vulkan.cpp golden_runs.cpp
    LIBS musicgen musicgen_gpu musicgen_generation musicgen_models musicgen_tokenizer
         nlohmann_json::nlohmann_json)
  target_compile_definitions(test_vulkan PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>")
  add_dependencies(test_vulkan musicgen_cli)
  musicgen_add_test(test_vulkan_codec NO_LEAK_CHECK SOURCES test_vulkan_codec.cpp LIBS musicgen_gpu musicgen_models)
  musicgen_add_test(test_vulkan_streaming NO_LEAK_CHECK SOURCES test_vulkan_streaming.cpp LIBS musicgen)
endif()
# PyTorch .bin checkpoints: parity on transformers-saved fixtures, hostile and broken archives.
musicgen_add_test(test_torch_checkpoint SOURCES test_torch_checkpoint.cpp
  LIBS musicgen nlohmann_json::nlohmann_json)
# Exact f16 storage of half-representable float32 weights: bitwise the float32 path.
musicgen_add_test(test_exact_f16 SOURCES test_exact_f16.cpp LIBS musicgen)
# Starts its own redis-server on a free loopback port (skipped visibly when it is not
# installed; MUSICGEN_REQUIRE_REDIS=1, set by .ci/run, makes that a failure).
musicgen_add_test(test_redis_queue SOURCES test_redis_queue.cpp LIBS musicgen_queue)
# Audio output: formats, normalisation (libebur128 measures the files), tags, seeds, stdout.
musicgen_add_test(test_audio_output SOURCES test_audio_output.cpp
  LIBS musicgen PkgConfig::SNDFILE PkgConfig::EBUR128 nlohmann_json::nlohmann_json)
target_compile_definitions(test_audio_output PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>")
add_dependencies(test_audio_output musicgen_cli)
# Continuous batching: requests sharing decoder steps give exactly what they give alone.
musicgen_add_test(test_batcher SOURCES test_batcher.cpp golden_runs.cpp
  LIBS musicgen musicgen_models nlohmann_json::nlohmann_json)
# Streaming audio: EnCodec decoding while codes arrive, GenerationOptions::on_audio.
musicgen_add_test(test_streaming SOURCES test_streaming.cpp LIBS musicgen musicgen_models)
# `musicgen serve` (server/): every endpoint in process on a free loopback port.
musicgen_add_test(test_server SOURCES test_server.cpp
  LIBS musicgen_server musicgen PkgConfig::CPP_HTTPLIB nlohmann_json::nlohmann_json)
# The web page in headless Chromium (Debian chromium + chromium-driver + python3-selenium); exit 77
# prints SKIPPED when they are missing, a failure instead with MUSICGEN_REQUIRE_CHROMIUM=1.
add_test(NAME test_server_web
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/server/test_web.py
          $<TARGET_FILE:musicgen_cli> ${MUSICGEN_FIXTURES_DIR}/tiny-a ${CMAKE_BINARY_DIR}/server.png)
set_tests_properties(test_server_web PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77)
# Replicas behind one Redis queue: 3 `serve --queue` processes, 30 jobs, one replica killed with
# SIGKILL mid-job and Redis restarted; every job succeeded once with one replica's audio.
add_test(NAME test_server_replicas
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/server/test_replicas.py
          $<TARGET_FILE:musicgen_cli> ${MUSICGEN_FIXTURES_DIR}/tiny-a)
set_tests_properties(test_server_replicas PROPERTIES TIMEOUT 400 SKIP_RETURN_CODE 77)
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME test_server_openapi COMMAND ${Python3_EXECUTABLE}
    ${CMAKE_CURRENT_SOURCE_DIR}/server/validate_openapi.py ${PROJECT_SOURCE_DIR}/server/openapi.json)
  set_tests_properties(test_server_openapi PROPERTIES TIMEOUT 60 SKIP_RETURN_CODE 77)
endif()
