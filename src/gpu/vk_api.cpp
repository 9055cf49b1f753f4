#include "gpu/vk_api.h"

#include <dlfcn.h>

#include <mutex>

namespace musicgen::gpu {

const VkApi* vk_global(std::string* why) {
  static VkApi api;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      error = "no Vulkan loader (libvulkan.so.1) on this system; install libvulkan1 and a driver "
              "(mesa-vulkan-drivers, or the GPU vendor's), or use --device cpu";
      return;
    }
    api.vkGetInstanceProcAddr =
        reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(lib, "vkGetInstanceProcAddr"));
    if (api.vkGetInstanceProcAddr == nullptr) {
      error = "the Vulkan loader has no vkGetInstanceProcAddr; reinstall libvulkan1";
      return;
    }
    api.vkCreateInstance = reinterpret_cast<PFN_vkCreateInstance>(
        api.vkGetInstanceProcAddr(nullptr, "vkCreateInstance"));
    api.vkEnumerateInstanceVersion = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(
        api.vkGetInstanceProcAddr(nullptr, "vkEnumerateInstanceVersion"));
    if (api.vkCreateInstance == nullptr) error = "the Vulkan loader has no vkCreateInstance";
  });
  if (!error.empty()) {
    if (why != nullptr) *why = error;
    return nullptr;
  }
  return &api;
}

void vk_load_instance(VkApi& api, VkInstance instance) {
#define MUSICGEN_VK_LOAD(name) \
  api.name = reinterpret_cast<PFN_##name>(api.vkGetInstanceProcAddr(instance, #name));
  MUSICGEN_VK_INSTANCE_FUNCS(MUSICGEN_VK_LOAD)
#undef MUSICGEN_VK_LOAD
}

void vk_load_device(VkApi& api, VkDevice device) {
#define MUSICGEN_VK_LOAD(name) \
  api.name = reinterpret_cast<PFN_##name>(api.vkGetDeviceProcAddr(device, #name));
  MUSICGEN_VK_DEVICE_FUNCS(MUSICGEN_VK_LOAD)
#undef MUSICGEN_VK_LOAD
}

const char* vk_result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult error";
  }
}

}  // namespace musicgen::gpu
