musicgen_add_test(test_parity SOURCES test_parity.cpp
  LIBS musicgen musicgen_generation musicgen_models musicgen_tokenizer nlohmann_json::nlohmann_json)
musicgen_add_test(test_kernels SOURCES test_kernels.cpp LIBS musicgen_generation musicgen_kernels)
musicgen_add_test(test_encodec SOURCES test_encodec.cpp LIBS musicgen_models)
musicgen_add_test(test_cli SOURCES test_cli.cpp LIBS musicgen_audio nlohmann_json::nlohmann_json)
target_compile_definitions(test_cli PRIVATE MUSICGEN_CLI="$<TARGET_FILE:musicgen_cli>")
add_dependencies(test_cli musicgen_cli)
