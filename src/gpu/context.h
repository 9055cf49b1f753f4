// A Vulkan compute device: adapter discovery, buffers, pipelines built from the embedded SPIR-V
// shaders (gpu/shaders/), and command recording. Knows nothing of models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gpu/vk_api.h"

namespace musicgen::gpu {

// One Vulkan physical device, as `musicgen devices` lists it.
struct AdapterInfo {
  int index = 0;
  std::string name;
  std::string type;  // "discrete", "integrated", "virtual", "cpu", "other"
  bool discrete = false;
  uint64_t device_local_bytes = 0;  // largest device-local heap
  std::string driver_version;
  std::string api_version;
  uint32_t vendor_id = 0;
  uint32_t max_storage_buffer_range = 0;
  uint32_t max_push_constants = 0;
  float timestamp_period_ns = 0;  // 0: no timestamps on compute queues
};

// The adapters of this system. Throws Error(kInvalidArgument) with a one-line message when there
// is no loader or no Vulkan driver.
std::vector<AdapterInfo> list_adapters();

// What --device names: the CPU, or a Vulkan adapter (index -1: the best one).
struct DeviceChoice {
  bool vulkan = false;
  int index = -1;
  std::string text() const;
};
// Parses "auto" | "cpu" | "vulkan" | "vulkan:N" (Error kInvalidArgument otherwise). "auto" picks a
// discrete GPU when one is present, else the CPU (never an error).
DeviceChoice resolve_device(const std::string& spec);

struct Buffer {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  size_t size = 0;
  void* mapped = nullptr;  // host-visible buffers only
};

struct Pipeline {
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
  uint32_t bindings = 0;
};

class Context {
 public:
  // Opens adapter `index` (-1: the first discrete GPU, else the first adapter). Throws a one-line
  // Error when there is no loader, no driver, no such adapter, or no compute queue.
  static std::shared_ptr<Context> open(int index);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const AdapterInfo& adapter() const { return adapter_; }
  const VkApi& vk() const { return api_; }
  VkDevice device() const { return device_; }

  // Device-local storage buffer (host_visible: host-visible, coherent and mapped). Throws
  // Error(kOutOfMemory) naming the size when the device has no room.
  Buffer create_buffer(size_t bytes, bool host_visible);
  void destroy(Buffer& b);
  // Copies host bytes into / out of a buffer (through a staging buffer when not host-visible).
  void upload(const Buffer& dst, const void* src, size_t bytes, size_t offset = 0);
  void download(const Buffer& src, void* dst, size_t bytes, size_t offset = 0);
  void fill_zero(const Buffer& dst);
  // Bytes allocated on the device now / at most so far.
  size_t allocated_bytes() const {
    std::lock_guard<std::mutex> lock(count_mutex_);
    return allocated_;
  }
  size_t peak_allocated_bytes() const {
    std::lock_guard<std::mutex> lock(count_mutex_);
    return peak_allocated_;
  }

  // The pipeline of an embedded shader variant ("matvec_f32"), built on first use.
  const Pipeline& pipeline(const std::string& name);

  VkCommandBuffer allocate_commands();
  void free_commands(VkCommandBuffer cb);
  // Submits recorded commands and waits for them (thread-safe).
  void submit_wait(VkCommandBuffer cb);
  // One-shot: records with fn, submits, waits.
  template <typename Fn>
  void run_once(Fn&& fn) {
    VkCommandBuffer cb = allocate_commands();
    {
      auto lock = recording_lock();
      begin(cb);
      fn(cb);
      end(cb);
    }
    submit_wait(cb);
    free_commands(cb);
  }
  // Held while recording into a command buffer of the shared pool (Vulkan requires the pool to
  // be externally synchronised: sessions may record concurrently).
  std::unique_lock<std::mutex> recording_lock() { return std::unique_lock<std::mutex>(pool_mutex_); }
  void begin(VkCommandBuffer cb);
  void end(VkCommandBuffer cb);

 private:
  Context() = default;
  uint32_t memory_type(uint32_t bits, bool host_visible) const;

  VkApi api_;
  AdapterInfo adapter_;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkPhysicalDeviceMemoryProperties memory_{};
  std::mutex mutex_;       // the queue, the pipelines
  std::mutex pool_mutex_;  // the command pool: allocation, recording, freeing
  std::map<std::string, Pipeline> pipelines_;
  std::mutex staging_mutex_;  // one reusable staging buffer for uploads and downloads
  Buffer staging_;
  mutable std::mutex count_mutex_;  // allocated_ and peak_allocated_ (buffers come and go on any thread)
  size_t allocated_ = 0, peak_allocated_ = 0;
};

// Records compute dispatches into a command buffer, each with its own descriptor set from a pool
// the recorder owns (so a recorded command buffer can be replayed as long as the recorder lives).
class Recorder {
 public:
  Recorder(Context& ctx, uint32_t max_dispatches);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  void begin(VkCommandBuffer cb);
  // Binds `buffers` to bindings 0..n-1 of the shader and dispatches groups (x, y, z).
  void dispatch(const std::string& shader, const std::vector<const Buffer*>& buffers,
                const void* push, uint32_t push_bytes, uint32_t gx, uint32_t gy = 1,
                uint32_t gz = 1);
  // Profiling: a timestamp before and after every later dispatch, which is filed under `label`
  // (set_label applies to the dispatches that follow). Needs timestamp support (adapter()).
  void enable_timestamps();
  void set_label(const std::string& label) { label_ = label; }
  const std::string& label() const { return label_; }
  // After the recorded commands ran: GPU nanoseconds per label, added to *totals.
  void add_timings(std::map<std::string, double>* totals) const;
  // Makes every earlier shader write visible to later shader reads and writes.
  void barrier();
  // Copies and makes the copy visible to the host.
  void copy_to_host(const Buffer& src, const Buffer& dst, size_t bytes);
  uint32_t dispatches() const { return used_; }

 private:
  Context& ctx_;
  VkDescriptorPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cb_ = VK_NULL_HANDLE;
  uint32_t capacity_ = 0, used_ = 0;
  VkQueryPool queries_ = VK_NULL_HANDLE;
  std::string label_ = "other";
  std::vector<std::string> labels_;  // per dispatch, when profiling
};

// The embedded SPIR-V of a shader variant (gpu_shaders.cpp, generated at build time).
struct ShaderBlob {
  const char* name;
  const uint32_t* words;
  size_t size_bytes;
  uint32_t bindings;
};
const ShaderBlob* find_shader(const std::string& name);

}  // namespace musicgen::gpu
