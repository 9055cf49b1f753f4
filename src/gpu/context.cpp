#include "gpu/context.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.h"

namespace musicgen::gpu {

namespace {

void check(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return;
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    fail(ErrorCode::kDevice, std::string(what) + " failed: " + vk_result_name(r) +
                                 "; the GPU has too little free memory for this model and batch "
                                 "(try a smaller batch, --weights q8, or --device cpu)");
  fail(ErrorCode::kDevice, std::string("Vulkan: ") + what + " failed (" + vk_result_name(r) +
                               "); check the GPU driver, or use --device cpu");
}

std::string version_text(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

const char* type_name(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

// An instance with the entry points loaded; throws when there is no loader or driver.
VkInstance make_instance(VkApi& api) {
  std::string why;
  const VkApi* global = vk_global(&why);
  if (global == nullptr) fail(ErrorCode::kDevice, why);
  api = *global;
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "musicgen.cpp";
  app.pEngineName = "musicgen.cpp";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  info.pApplicationInfo = &app;
  VkInstance instance = VK_NULL_HANDLE;
  const VkResult r = api.vkCreateInstance(&info, nullptr, &instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
    fail(ErrorCode::kDevice, std::string("no Vulkan driver found (") + vk_result_name(r) +
                                 "); install the GPU's Vulkan driver (mesa-vulkan-drivers for AMD, "
                                 "Intel and the CPU's lavapipe; the vendor's for NVIDIA) or use "
                                 "--device cpu");
  check(r, "vkCreateInstance");
  vk_load_instance(api, instance);
  return instance;
}

std::vector<VkPhysicalDevice> physical_devices(const VkApi& api, VkInstance instance) {
  uint32_t n = 0;
  check(api.vkEnumeratePhysicalDevices(instance, &n, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devs(n);
  if (n > 0) check(api.vkEnumeratePhysicalDevices(instance, &n, devs.data()), "vkEnumeratePhysicalDevices");
  devs.resize(n);
  return devs;
}

AdapterInfo describe(const VkApi& api, VkPhysicalDevice d, int index) {
  VkPhysicalDeviceProperties p{};
  api.vkGetPhysicalDeviceProperties(d, &p);
  VkPhysicalDeviceMemoryProperties m{};
  api.vkGetPhysicalDeviceMemoryProperties(d, &m);
  AdapterInfo a;
  a.index = index;
  a.name = p.deviceName;
  a.type = type_name(p.deviceType);
  a.discrete = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
  for (uint32_t h = 0; h < m.memoryHeapCount; ++h)
    if (m.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      a.device_local_bytes = std::max<uint64_t>(a.device_local_bytes, m.memoryHeaps[h].size);
  a.vendor_id = p.vendorID;
  if (p.vendorID == 0x10DE)  // NVIDIA packs 10.8.8.6
    a.driver_version = std::to_string(p.driverVersion >> 22) + "." +
                       std::to_string((p.driverVersion >> 14) & 0xff);
  else
    a.driver_version = version_text(p.driverVersion);
  a.api_version = version_text(p.apiVersion);
  a.max_storage_buffer_range = p.limits.maxStorageBufferRange;
  a.max_push_constants = p.limits.maxPushConstantsSize;
  a.timestamp_period_ns = p.limits.timestampPeriod;
  return a;
}

}  // namespace

std::vector<AdapterInfo> list_adapters() {
  VkApi api;
  VkInstance instance = make_instance(api);
  std::vector<AdapterInfo> out;
  const auto devs = physical_devices(api, instance);
  for (size_t i = 0; i < devs.size(); ++i) out.push_back(describe(api, devs[i], static_cast<int>(i)));
  api.vkDestroyInstance(instance, nullptr);
  return out;
}

std::string DeviceChoice::text() const {
  if (!vulkan) return "cpu";
  return index < 0 ? "vulkan" : "vulkan:" + std::to_string(index);
}

DeviceChoice resolve_device(const std::string& spec) {
  DeviceChoice c;
  if (spec == "cpu") return c;
  if (spec == "auto") {
    try {
      for (const AdapterInfo& a : list_adapters())
        if (a.discrete) return DeviceChoice{true, a.index};
    } catch (const Error&) {
    }
    return c;  // no discrete GPU: the CPU
  }
  if (spec == "vulkan") return DeviceChoice{true, -1};
  if (spec.rfind("vulkan:", 0) == 0) {
    const std::string n = spec.substr(7);
    if (!n.empty() && n.size() <= 4 && std::all_of(n.begin(), n.end(), ::isdigit))
      return DeviceChoice{true, std::stoi(n)};
  }
  fail(ErrorCode::kInvalidArgument, "unknown device '" + spec +
                                        "'; use auto, cpu, vulkan or vulkan:N (musicgen devices "
                                        "lists the adapters)");
}

std::shared_ptr<Context> Context::open(int index) {
  std::shared_ptr<Context> ctx(new Context());
  VkApi& api = ctx->api_;
  ctx->instance_ = make_instance(api);
  const auto devs = physical_devices(api, ctx->instance_);
  if (devs.empty())
    fail(ErrorCode::kDevice, "the Vulkan loader found no device; install a Vulkan driver "
                             "(mesa-vulkan-drivers, or the GPU vendor's) or use --device cpu");
  if (index >= static_cast<int>(devs.size()))
    fail(ErrorCode::kDevice, "no Vulkan adapter " + std::to_string(index) + ": this system has " +
                                 std::to_string(devs.size()) + " (musicgen devices lists them)");
  if (index < 0) {
    index = 0;
    for (size_t i = 0; i < devs.size(); ++i)
      if (describe(api, devs[i], 0).discrete) {
        index = static_cast<int>(i);
        break;
      }
  }
  ctx->physical_ = devs[index];
  ctx->adapter_ = describe(api, ctx->physical_, index);
  api.vkGetPhysicalDeviceMemoryProperties(ctx->physical_, &ctx->memory_);

  uint32_t nq = 0;
  api.vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical_, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> families(nq);
  api.vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical_, &nq, families.data());
  int family = -1;
  for (uint32_t i = 0; i < nq; ++i)  // prefer a compute queue without graphics
    if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(families[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) {
      family = static_cast<int>(i);
      break;
    }
  if (family < 0)
    for (uint32_t i = 0; i < nq; ++i)
      if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
        family = static_cast<int>(i);
        break;
      }
  if (family < 0)
    fail(ErrorCode::kDevice, "Vulkan adapter '" + ctx->adapter_.name + "' has no compute queue");
  ctx->queue_family_ = static_cast<uint32_t>(family);
  if (families[family].timestampValidBits == 0) ctx->adapter_.timestamp_period_ns = 0;

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo q{};
  q.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
  q.queueFamilyIndex = ctx->queue_family_;
  q.queueCount = 1;
  q.pQueuePriorities = &priority;
  VkDeviceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  info.queueCreateInfoCount = 1;
  info.pQueueCreateInfos = &q;
  check(api.vkCreateDevice(ctx->physical_, &info, nullptr, &ctx->device_), "vkCreateDevice");
  vk_load_device(api, ctx->device_);
  api.vkGetDeviceQueue(ctx->device_, ctx->queue_family_, 0, &ctx->queue_);

  VkCommandPoolCreateInfo pool{};
  pool.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pool.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool.queueFamilyIndex = ctx->queue_family_;
  check(api.vkCreateCommandPool(ctx->device_, &pool, nullptr, &ctx->command_pool_), "vkCreateCommandPool");
  VkFenceCreateInfo fence{};
  fence.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  check(api.vkCreateFence(ctx->device_, &fence, nullptr, &ctx->fence_), "vkCreateFence");
  return ctx;
}

Context::~Context() {
  if (device_ != VK_NULL_HANDLE) {
    api_.vkQueueWaitIdle(queue_);
    destroy(staging_);
    for (auto& [name, p] : pipelines_) {
      api_.vkDestroyPipeline(device_, p.pipeline, nullptr);
      api_.vkDestroyPipelineLayout(device_, p.layout, nullptr);
      api_.vkDestroyDescriptorSetLayout(device_, p.set_layout, nullptr);
    }
    api_.vkDestroyFence(device_, fence_, nullptr);
    api_.vkDestroyCommandPool(device_, command_pool_, nullptr);
    api_.vkDestroyDevice(device_, nullptr);
  }
  if (instance_ != VK_NULL_HANDLE) api_.vkDestroyInstance(instance_, nullptr);
}

uint32_t Context::memory_type(uint32_t bits, bool host_visible) const {
  const VkMemoryPropertyFlags want =
      host_visible ? (VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT)
                   : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  for (int pass = 0; pass < 2; ++pass)
    for (uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
      if (!(bits & (1u << i))) continue;
      const VkMemoryPropertyFlags f = memory_.memoryTypes[i].propertyFlags;
      if ((f & want) != want) continue;
      // First pass: host-visible memory that is not device-local (system memory), so the
      // device-local heap is kept for weights; second pass: anything that fits.
      if (pass == 0 && host_visible && (f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) continue;
      return i;
    }
  fail(ErrorCode::kDevice, "Vulkan adapter '" + adapter_.name + "' has no suitable " +
                               (host_visible ? "host-visible" : "device-local") + " memory type");
}

Buffer Context::create_buffer(size_t bytes, bool host_visible) {
  Buffer b;
  b.size = std::max<size_t>(4, (bytes + 3) / 4 * 4);
  if (b.size > adapter_.max_storage_buffer_range)
    fail(ErrorCode::kDevice, "a " + std::to_string(b.size >> 20) + " MiB buffer exceeds adapter '" +
                                 adapter_.name + "' storage buffer limit of " +
                                 std::to_string(adapter_.max_storage_buffer_range >> 20) + " MiB");
  VkBufferCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  info.size = b.size;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(api_.vkCreateBuffer(device_, &info, nullptr, &b.buffer), "vkCreateBuffer");
  VkMemoryRequirements req{};
  api_.vkGetBufferMemoryRequirements(device_, b.buffer, &req);
  VkMemoryAllocateInfo alloc{};
  alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = memory_type(req.memoryTypeBits, host_visible);
  const VkResult r = api_.vkAllocateMemory(device_, &alloc, nullptr, &b.memory);
  if (r != VK_SUCCESS) {
    api_.vkDestroyBuffer(device_, b.buffer, nullptr);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
      fail(ErrorCode::kDevice, "GPU '" + adapter_.name + "' is out of memory allocating " +
                                   std::to_string((b.size + (1 << 20) - 1) >> 20) + " MiB (" +
                                   std::to_string(allocated_ >> 20) +
                                   " MiB in use); try a smaller batch, --weights q8, or --device cpu");
    check(r, "vkAllocateMemory");
  }
  check(api_.vkBindBufferMemory(device_, b.buffer, b.memory, 0), "vkBindBufferMemory");
  if (host_visible) check(api_.vkMapMemory(device_, b.memory, 0, VK_WHOLE_SIZE, 0, &b.mapped), "vkMapMemory");
  {
    std::lock_guard<std::mutex> lock(count_mutex_);
    allocated_ += req.size;
    peak_allocated_ = std::max(peak_allocated_, allocated_);
  }
  return b;
}

void Context::destroy(Buffer& b) {
  if (b.buffer == VK_NULL_HANDLE) return;
  VkMemoryRequirements req{};
  api_.vkGetBufferMemoryRequirements(device_, b.buffer, &req);
  {
    std::lock_guard<std::mutex> lock(count_mutex_);
    allocated_ -= std::min(allocated_, static_cast<size_t>(req.size));
  }
  if (b.mapped != nullptr) api_.vkUnmapMemory(device_, b.memory);
  api_.vkDestroyBuffer(device_, b.buffer, nullptr);
  api_.vkFreeMemory(device_, b.memory, nullptr);
  b = Buffer{};
}

namespace {
constexpr size_t kStagingBytes = size_t{64} << 20;
}

void Context::upload(const Buffer& dst, const void* src, size_t bytes, size_t offset) {
  if (bytes == 0) return;
  if (dst.mapped != nullptr) {
    std::memcpy(static_cast<char*>(dst.mapped) + offset, src, bytes);
    return;
  }
  std::lock_guard<std::mutex> lock(staging_mutex_);
  if (staging_.buffer == VK_NULL_HANDLE) staging_ = create_buffer(kStagingBytes, true);
  const Buffer& staging = staging_;
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(bytes - done, kStagingBytes);
    std::memcpy(staging.mapped, static_cast<const char*>(src) + done, n);
    run_once([&](VkCommandBuffer cb) {
      VkBufferCopy region{0, offset + done, n};
      api_.vkCmdCopyBuffer(cb, staging.buffer, dst.buffer, 1, &region);
    });
    done += n;
  }
}

void Context::download(const Buffer& src, void* dst, size_t bytes, size_t offset) {
  if (bytes == 0) return;
  if (src.mapped != nullptr) {
    std::memcpy(dst, static_cast<const char*>(src.mapped) + offset, bytes);
    return;
  }
  std::lock_guard<std::mutex> lock(staging_mutex_);
  if (staging_.buffer == VK_NULL_HANDLE) staging_ = create_buffer(kStagingBytes, true);
  const Buffer& staging = staging_;
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(bytes - done, kStagingBytes);
    run_once([&](VkCommandBuffer cb) {
      VkBufferCopy region{offset + done, 0, n};
      api_.vkCmdCopyBuffer(cb, src.buffer, staging.buffer, 1, &region);
    });
    std::memcpy(static_cast<char*>(dst) + done, staging.mapped, n);
    done += n;
  }
}

void Context::fill_zero(const Buffer& dst) {
  if (dst.mapped != nullptr) {
    std::memset(dst.mapped, 0, dst.size);
    return;
  }
  run_once([&](VkCommandBuffer cb) { api_.vkCmdFillBuffer(cb, dst.buffer, 0, VK_WHOLE_SIZE, 0); });
}

const Pipeline& Context::pipeline(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pipelines_.find(name);
  if (it != pipelines_.end()) return it->second;
  const ShaderBlob* blob = find_shader(name);
  if (blob == nullptr) fail(ErrorCode::kDevice, "internal: no embedded shader '" + name + "'");
  Pipeline p;
  p.bindings = blob->bindings;
  std::vector<VkDescriptorSetLayoutBinding> binds(blob->bindings);
  for (uint32_t i = 0; i < blob->bindings; ++i) {
    binds[i] = VkDescriptorSetLayoutBinding{};
    binds[i].binding = i;
    binds[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    binds[i].descriptorCount = 1;
    binds[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo dl{};
  dl.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  dl.bindingCount = blob->bindings;
  dl.pBindings = binds.data();
  check(api_.vkCreateDescriptorSetLayout(device_, &dl, nullptr, &p.set_layout), "vkCreateDescriptorSetLayout");
  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, 128};
  VkPipelineLayoutCreateInfo pl{};
  pl.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  pl.setLayoutCount = 1;
  pl.pSetLayouts = &p.set_layout;
  pl.pushConstantRangeCount = 1;
  pl.pPushConstantRanges = &range;
  check(api_.vkCreatePipelineLayout(device_, &pl, nullptr, &p.layout), "vkCreatePipelineLayout");
  VkShaderModuleCreateInfo sm{};
  sm.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
  sm.codeSize = blob->size_bytes;
  sm.pCode = blob->words;
  VkShaderModule module = VK_NULL_HANDLE;
  check(api_.vkCreateShaderModule(device_, &sm, nullptr, &module), "vkCreateShaderModule");
  VkComputePipelineCreateInfo cp{};
  cp.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
  cp.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  cp.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  cp.stage.module = module;
  cp.stage.pName = "main";
  cp.layout = p.layout;
  const VkResult r = api_.vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &cp, nullptr, &p.pipeline);
  api_.vkDestroyShaderModule(device_, module, nullptr);
  check(r, ("building shader " + name).c_str());
  return pipelines_.emplace(name, p).first->second;
}

VkCommandBuffer Context::allocate_commands() {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  VkCommandBufferAllocateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  info.commandPool = command_pool_;
  info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  info.commandBufferCount = 1;
  VkCommandBuffer cb = VK_NULL_HANDLE;
  check(api_.vkAllocateCommandBuffers(device_, &info, &cb), "vkAllocateCommandBuffers");
  return cb;
}

void Context::free_commands(VkCommandBuffer cb) {
  std::lock_guard<std::mutex> lock(pool_mutex_);
  api_.vkFreeCommandBuffers(device_, command_pool_, 1, &cb);
}

void Context::begin(VkCommandBuffer cb) {
  VkCommandBufferBeginInfo info{};
  info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  check(api_.vkBeginCommandBuffer(cb, &info), "vkBeginCommandBuffer");
}

void Context::end(VkCommandBuffer cb) { check(api_.vkEndCommandBuffer(cb), "vkEndCommandBuffer"); }

void Context::submit_wait(VkCommandBuffer cb) {
  std::lock_guard<std::mutex> lock(mutex_);
  VkSubmitInfo info{};
  info.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  info.commandBufferCount = 1;
  info.pCommandBuffers = &cb;
  check(api_.vkQueueSubmit(queue_, 1, &info, fence_), "vkQueueSubmit");
  // A decoder step is a few milliseconds: poll the fence briefly rather than sleep in the
  // driver (a wake-up costs tens of microseconds a step). Not on a CPU adapter (lavapipe), whose
  // worker threads need the cores.
  bool done = false;
  if (adapter_.type != "cpu") {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    while (!done && std::chrono::steady_clock::now() < until) {
      const VkResult r = api_.vkGetFenceStatus(device_, fence_);
      if (r == VK_SUCCESS) done = true;
      else if (r != VK_NOT_READY) check(r, "vkGetFenceStatus");
    }
  }
  if (!done) check(api_.vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  check(api_.vkResetFences(device_, 1, &fence_), "vkResetFences");
}

Recorder::Recorder(Context& ctx, uint32_t max_dispatches) : ctx_(ctx), capacity_(max_dispatches) {
  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, max_dispatches * 8};
  VkDescriptorPoolCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
  info.maxSets = max_dispatches;
  info.poolSizeCount = 1;
  info.pPoolSizes = &size;
  check(ctx_.vk().vkCreateDescriptorPool(ctx_.device(), &info, nullptr, &pool_), "vkCreateDescriptorPool");
}

Recorder::~Recorder() {
  if (queries_ != VK_NULL_HANDLE) ctx_.vk().vkDestroyQueryPool(ctx_.device(), queries_, nullptr);
  ctx_.vk().vkDestroyDescriptorPool(ctx_.device(), pool_, nullptr);
}

void Recorder::begin(VkCommandBuffer cb) {
  cb_ = cb;
  if (queries_ != VK_NULL_HANDLE) ctx_.vk().vkCmdResetQueryPool(cb_, queries_, 0, 2 * capacity_);
}

void Recorder::enable_timestamps() {
  if (ctx_.adapter().timestamp_period_ns <= 0)
    fail(ErrorCode::kDevice, "adapter '" + ctx_.adapter().name + "' has no timestamps to profile with");
  VkQueryPoolCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO;
  info.queryType = VK_QUERY_TYPE_TIMESTAMP;
  info.queryCount = 2 * capacity_;
  check(ctx_.vk().vkCreateQueryPool(ctx_.device(), &info, nullptr, &queries_), "vkCreateQueryPool");
}

void Recorder::add_timings(std::map<std::string, double>* totals) const {
  if (queries_ == VK_NULL_HANDLE || used_ == 0) return;
  std::vector<uint64_t> ts(2 * used_);
  check(ctx_.vk().vkGetQueryPoolResults(ctx_.device(), queries_, 0, 2 * used_, ts.size() * 8, ts.data(), 8,
                                        VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
        "vkGetQueryPoolResults");
  const double period = ctx_.adapter().timestamp_period_ns;
  for (uint32_t i = 0; i < used_; ++i)
    (*totals)[labels_[i]] += static_cast<double>(ts[2 * i + 1] - ts[2 * i]) * period;
}

void Recorder::dispatch(const std::string& shader, const std::vector<const Buffer*>& buffers,
                        const void* push, uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz) {
  const Pipeline& p = ctx_.pipeline(shader);
  if (buffers.size() != p.bindings)
    fail(ErrorCode::kDevice, "internal: shader " + shader + " takes " + std::to_string(p.bindings) +
                                 " buffers, " + std::to_string(buffers.size()) + " given");
  if (used_ >= capacity_) fail(ErrorCode::kDevice, "internal: recorder descriptor pool exhausted");
  ++used_;
  const VkApi& vk = ctx_.vk();
  VkDescriptorSetAllocateInfo alloc{};
  alloc.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
  alloc.descriptorPool = pool_;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &p.set_layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  check(vk.vkAllocateDescriptorSets(ctx_.device(), &alloc, &set), "vkAllocateDescriptorSets");
  std::vector<VkDescriptorBufferInfo> infos(buffers.size());
  std::vector<VkWriteDescriptorSet> writes(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    infos[i] = VkDescriptorBufferInfo{buffers[i]->buffer, 0, VK_WHOLE_SIZE};
    writes[i] = VkWriteDescriptorSet{};
    writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    writes[i].dstSet = set;
    writes[i].dstBinding = static_cast<uint32_t>(i);
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  vk.vkUpdateDescriptorSets(ctx_.device(), static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);
  vk.vkCmdBindPipeline(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
  vk.vkCmdBindDescriptorSets(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
  if (push_bytes > 0) vk.vkCmdPushConstants(cb_, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
  if (queries_ != VK_NULL_HANDLE) {
    labels_.push_back(label_);
    vk.vkCmdWriteTimestamp(cb_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 2 * (used_ - 1));
  }
  vk.vkCmdDispatch(cb_, gx, gy, gz);
  if (queries_ != VK_NULL_HANDLE)
    vk.vkCmdWriteTimestamp(cb_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 2 * (used_ - 1) + 1);
}

void Recorder::barrier() {
  VkMemoryBarrier b{};
  b.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  b.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  ctx_.vk().vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &b, 0, nullptr, 0, nullptr);
}

void Recorder::copy_to_host(const Buffer& src, const Buffer& dst, size_t bytes) {
  const VkApi& vk = ctx_.vk();
  VkMemoryBarrier b{};
  b.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  b.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  b.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
  vk.vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                          1, &b, 0, nullptr, 0, nullptr);
  VkBufferCopy region{0, 0, bytes};
  vk.vkCmdCopyBuffer(cb_, src.buffer, dst.buffer, 1, &region);
  VkMemoryBarrier h{};
  h.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  h.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  h.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vk.vkCmdPipelineBarrier(cb_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &h, 0,
                          nullptr, 0, nullptr);
}

}  // namespace musicgen::gpu
