// The Vulkan entry points the backend uses, loaded at run time from the system's loader
// (libvulkan.so.1) so that the program starts, and the CPU path runs, where Vulkan is absent.
#pragma once

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <string>

namespace musicgen::gpu {

#define MUSICGEN_VK_INSTANCE_FUNCS(X)                                   \
  X(vkDestroyInstance)                                                  \
  X(vkEnumeratePhysicalDevices)                                         \
  X(vkGetPhysicalDeviceProperties)                                      \
  X(vkGetPhysicalDeviceMemoryProperties)                                \
  X(vkGetPhysicalDeviceQueueFamilyProperties)                           \
  X(vkGetPhysicalDeviceFeatures)                                        \
  X(vkCreateDevice)                                                     \
  X(vkGetDeviceProcAddr)

#define MUSICGEN_VK_DEVICE_FUNCS(X) \
  X(vkDestroyDevice)                \
  X(vkGetDeviceQueue)               \
  X(vkCreateBuffer)                 \
  X(vkDestroyBuffer)                \
  X(vkGetBufferMemoryRequirements)  \
  X(vkAllocateMemory)               \
  X(vkFreeMemory)                   \
  X(vkBindBufferMemory)             \
  X(vkMapMemory)                    \
  X(vkUnmapMemory)                  \
  X(vkCreateShaderModule)           \
  X(vkDestroyShaderModule)          \
  X(vkCreateDescriptorSetLayout)    \
  X(vkDestroyDescriptorSetLayout)   \
  X(vkCreatePipelineLayout)         \
  X(vkDestroyPipelineLayout)        \
  X(vkCreateComputePipelines)       \
  X(vkDestroyPipeline)              \
  X(vkCreateDescriptorPool)         \
  X(vkDestroyDescriptorPool)        \
  X(vkResetDescriptorPool)          \
  X(vkAllocateDescriptorSets)       \
  X(vkUpdateDescriptorSets)         \
  X(vkCreateCommandPool)            \
  X(vkDestroyCommandPool)           \
  X(vkAllocateCommandBuffers)       \
  X(vkFreeCommandBuffers)           \
  X(vkBeginCommandBuffer)           \
  X(vkEndCommandBuffer)             \
  X(vkResetCommandBuffer)           \
  X(vkCmdBindPipeline)              \
  X(vkCmdBindDescriptorSets)        \
  X(vkCmdPushConstants)             \
  X(vkCmdDispatch)                  \
  X(vkCmdPipelineBarrier)           \
  X(vkCmdCopyBuffer)                \
  X(vkCmdFillBuffer)                \
  X(vkCmdWriteTimestamp)            \
  X(vkCreateQueryPool)              \
  X(vkDestroyQueryPool)             \
  X(vkGetQueryPoolResults)          \
  X(vkCmdResetQueryPool)            \
  X(vkQueueSubmit)                  \
  X(vkQueueWaitIdle)                \
  X(vkCreateFence)                  \
  X(vkDestroyFence)                 \
  X(vkWaitForFences)                \
  X(vkGetFenceStatus)               \
  X(vkResetFences)

struct VkApi {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  PFN_vkCreateInstance vkCreateInstance = nullptr;
  PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion = nullptr;
#define MUSICGEN_VK_DECLARE(name) PFN_##name name = nullptr;
  MUSICGEN_VK_INSTANCE_FUNCS(MUSICGEN_VK_DECLARE)
  MUSICGEN_VK_DEVICE_FUNCS(MUSICGEN_VK_DECLARE)
#undef MUSICGEN_VK_DECLARE
};

// Opens the loader once (thread-safe) and fills the global entry points. Returns nullptr and sets
// *why when there is no loader.
const VkApi* vk_global(std::string* why);
// Loads the instance-level entry points into api.
void vk_load_instance(VkApi& api, VkInstance instance);
// Loads the device-level entry points into api.
void vk_load_device(VkApi& api, VkDevice device);

// "VK_ERROR_OUT_OF_DEVICE_MEMORY" etc.
const char* vk_result_name(VkResult r);

}  // namespace musicgen::gpu
