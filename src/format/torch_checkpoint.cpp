#include "format/torch_checkpoint.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "core/error.h"

namespace musicgen {

namespace {

// ---------------------------------------------------------------------------------------------
// Errors

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  fail(ErrorCode::kInvalidModel, "cannot read PyTorch checkpoint '" + path + "': " + what);
}

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  bad(path, what + "; re-download the checkpoint or re-save it with torch.save");
}

[[noreturn]] void refused(const std::string& path, const std::string& what) {
  bad(path, what + ", which a plain state dict never contains; refusing to read it (nothing "
                   "from the file was run); convert the checkpoint to safetensors in a trusted "
                   "environment");
}

// ---------------------------------------------------------------------------------------------
// Zip (stored entries only; zip64 where needed)

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t rd64(const uint8_t* p) { return rd32(p) | (static_cast<uint64_t>(rd32(p + 4)) << 32); }

struct ZipEntry {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

std::map<std::string, ZipEntry> read_zip(const MappedFile& f) {
  const std::string& path = f.path();
  const uint8_t* base = f.data();
  const uint64_t size = f.size();
  constexpr uint64_t kEocd = 22;
  if (size < kEocd) corrupt(path, "the file is " + std::to_string(size) + " bytes, too short for a zip archive");
  // End of central directory: the last signature within the maximum comment length.
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest = size - kEocd > 65535 ? size - kEocd - 65535 : 0;
  for (uint64_t p = size - kEocd + 1; p-- > lowest;) {
    if (rd32(base + p) == 0x06054b50 && p + kEocd + rd16(base + p + 20) <= size) {
      eocd = p;
      break;
    }
  }
  if (eocd == UINT64_MAX)
    corrupt(path, "no zip end-of-central-directory record (truncated file?)");
  uint64_t entries = rd16(base + eocd + 10);
  uint64_t cd_size = rd32(base + eocd + 12);
  uint64_t cd_offset = rd32(base + eocd + 16);
  if (rd16(base + eocd + 4) != 0 || rd16(base + eocd + 6) != 0)
    corrupt(path, "multi-disk zip archives are not supported");
  if (eocd >= 20 && rd32(base + eocd - 20) == 0x07064b50) {  // zip64 locator
    const uint64_t z = rd64(base + eocd - 20 + 8);
    if (z > eocd - 20 || eocd - 20 - z < 56 || rd32(base + z) != 0x06064b50)
      corrupt(path, "the zip64 end-of-central-directory record is missing or misplaced");
    entries = rd64(base + z + 32);
    cd_size = rd64(base + z + 40);
    cd_offset = rd64(base + z + 48);
  }
  if (cd_offset > size || cd_size > size - cd_offset)
    corrupt(path, "the zip central directory lies outside the file (truncated file?)");
  if (entries > cd_size / 46)
    corrupt(path, "the zip central directory claims " + std::to_string(entries) +
                      " entries in " + std::to_string(cd_size) + " bytes");
  std::map<std::string, ZipEntry> out;
  const uint8_t* p = base + cd_offset;
  const uint8_t* end = p + cd_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (end - p < 46 || rd32(p) != 0x02014b50)
      corrupt(path, "zip central directory entry " + std::to_string(i) + " is malformed");
    const uint16_t flags = rd16(p + 8), method = rd16(p + 10);
    uint64_t csize = rd32(p + 20), usize = rd32(p + 24);
    const uint16_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
    uint64_t lho = rd32(p + 42);
    if (static_cast<uint64_t>(end - p) < 46u + nlen + xlen + clen)
      corrupt(path, "zip central directory entry " + std::to_string(i) + " runs past the directory");
    const std::string name(reinterpret_cast<const char*>(p + 46), nlen);
    // zip64 extended information: the 8-byte values of the fields saturated above, in order.
    const uint8_t* x = p + 46 + nlen;
    const uint8_t* xend = x + xlen;
    while (xend - x >= 4) {
      const uint16_t id = rd16(x), len = rd16(x + 2);
      if (xend - x - 4 < len) corrupt(path, "zip entry '" + name + "' has a malformed extra field");
      if (id == 0x0001) {
        const uint8_t* q = x + 4;
        const uint8_t* qend = q + len;
        auto take = [&](uint64_t* v) {
          if (*v != 0xFFFFFFFFu) return;
          if (qend - q < 8) corrupt(path, "zip entry '" + name + "' has a short zip64 field");
          *v = rd64(q);
          q += 8;
        };
        take(&usize);
        take(&csize);
        take(&lho);
      }
      x += 4 + len;
    }
    if (flags & 1) refused(path, "zip entry '" + name + "' is encrypted");
    if (method != 0)
      bad(path, "zip entry '" + name + "' is compressed (method " + std::to_string(method) +
                    "); torch.save writes stored entries only: re-save the checkpoint with "
                    "torch.save (do not re-zip it)");
    if (csize != usize) corrupt(path, "stored zip entry '" + name + "' has two different sizes");
    if (lho > size || size - lho < 30 || rd32(base + lho) != 0x04034b50)
      corrupt(path, "zip entry '" + name + "' has no local header at offset " + std::to_string(lho));
    const uint64_t data = lho + 30 + rd16(base + lho + 26) + rd16(base + lho + 28);
    if (data > size || csize > size - data)
      corrupt(path, "zip entry '" + name + "' (" + std::to_string(csize) + " bytes at offset " +
                        std::to_string(data) + ") runs past the end of the " +
                        std::to_string(size) + "-byte file (truncated file?)");
    if (out.count(name)) corrupt(path, "zip entry '" + name + "' appears twice");
    out[name] = ZipEntry{base + data, csize};
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Restricted unpickler

enum class Callable { kOrderedDict, kRebuildTensor, kRebuildParameter };

struct Obj {
  enum Kind { kNone, kBool, kInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kCallable,
              kStorageClass, kStorage, kTensor };
  Kind kind = kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Obj*> items;                       // tuple, list
  std::vector<std::pair<Obj*, Obj*>> entries;    // dict
  Callable callable = Callable::kOrderedDict;
  DType dtype = DType::kF32;                     // storage class, storage
  // Storage: s = key, i = numel. Tensor:
  Obj* storage = nullptr;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

const char* kind_name(Obj::Kind k) {
  switch (k) {
    case Obj::kNone: return "None";
    case Obj::kBool: return "bool";
    case Obj::kInt: return "int";
    case Obj::kFloat: return "float";
    case Obj::kStr: return "str";
    case Obj::kBytes: return "bytes";
    case Obj::kTuple: return "tuple";
    case Obj::kList: return "list";
    case Obj::kDict: return "dict";
    case Obj::kCallable: return "function";
    case Obj::kStorageClass: return "storage class";
    case Obj::kStorage: return "storage";
    case Obj::kTensor: return "tensor";
  }
  return "?";
}

class Unpickler {
 public:
  Unpickler(const std::string& path, const uint8_t* data, size_t size,
            const std::map<std::string, ZipEntry>& zip, const std::string& prefix)
      : path_(path), p_(data), end_(data + size), zip_(zip), prefix_(prefix) {}

  Obj* run() {
    while (true) {
      if (p_ >= end_) corrupt(path_, "data.pkl ends without a STOP opcode (truncated pickle)");
      const uint8_t op = *p_++;
      switch (op) {
        case 0x80: take(1); break;  // PROTO
        case 0x95: take(8); break;  // FRAME: framing only
        case '}': push(make(Obj::kDict)); break;
        case ']': push(make(Obj::kList)); break;
        case ')': push(make(Obj::kTuple)); break;
        case '(': marks_.push_back(stack_.size()); break;
        case 'N': push(make(Obj::kNone)); break;
        case 0x88: case 0x89: {
          Obj* o = make(Obj::kBool);
          o->i = op == 0x88;
          push(o);
          break;
        }
        case 'J': push_int(static_cast<int32_t>(rd32(take(4)))); break;
        case 'K': push_int(*take(1)); break;
        case 'M': push_int(rd16(take(2))); break;
        case 0x8a: {  // LONG1: little-endian two's complement
          const uint8_t n = *take(1);
          if (n > 8) refused(path_, "an integer wider than 64 bits");
          const uint8_t* b = take(n);
          uint64_t v = 0;
          for (int k = n - 1; k >= 0; --k) v = (v << 8) | b[k];
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const uint8_t* b = take(8);
          uint64_t v = 0;
          for (int k = 0; k < 8; ++k) v = (v << 8) | b[k];
          Obj* o = make(Obj::kFloat);
          std::memcpy(&o->f, &v, 8);
          push(o);
          break;
        }
        case 'X': push_str(Obj::kStr, rd32(take(4))); break;       // BINUNICODE
        case 0x8c: push_str(Obj::kStr, *take(1)); break;           // SHORT_BINUNICODE
        case 0x8d: push_str(Obj::kStr, rd64(take(8))); break;      // BINUNICODE8
        case 'T': push_str(Obj::kStr, rd32(take(4))); break;       // BINSTRING
        case 'U': push_str(Obj::kStr, *take(1)); break;            // SHORT_BINSTRING
        case 'B': push_str(Obj::kBytes, rd32(take(4))); break;     // BINBYTES
        case 'C': push_str(Obj::kBytes, *take(1)); break;          // SHORT_BINBYTES
        case 0x8e: push_str(Obj::kBytes, rd64(take(8))); break;    // BINBYTES8
        case 'q': memo_[*take(1)] = top(); break;                  // BINPUT
        case 'r': memo_[rd32(take(4))] = top(); break;             // LONG_BINPUT
        case 0x94: memo_[static_cast<uint32_t>(memo_.size())] = top(); break;  // MEMOIZE
        case 'h': push(memo_get(*take(1))); break;                 // BINGET
        case 'j': push(memo_get(rd32(take(4)))); break;            // LONG_BINGET
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Obj* name = pop();
          Obj* module = pop();
          if (module->kind != Obj::kStr || name->kind != Obj::kStr)
            corrupt(path_, "STACK_GLOBAL without two strings");
          push(global(module->s, name->s));
          break;
        }
        case 't': {  // TUPLE
          Obj* o = make(Obj::kTuple);
          o->items = pop_mark();
          push(o);
          break;
        }
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          const size_t n = op - 0x84;
          Obj* o = make(Obj::kTuple);
          o->items.resize(n);
          for (size_t k = n; k-- > 0;) o->items[k] = pop();
          push(o);
          break;
        }
        case 'a': {  // APPEND
          Obj* v = pop();
          list_of(top())->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          std::vector<Obj*> vs = pop_mark();
          Obj* l = list_of(top());
          l->items.insert(l->items.end(), vs.begin(), vs.end());
          break;
        }
        case 's': {  // SETITEM
          Obj* v = pop();
          Obj* k = pop();
          set_item(top(), k, v);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<Obj*> kv = pop_mark();
          if (kv.size() % 2) corrupt(path_, "SETITEMS with an odd number of items");
          Obj* d = top();
          for (size_t k = 0; k < kv.size(); k += 2) set_item(d, kv[k], kv[k + 1]);
          break;
        }
        case 'Q': push(persistent_load(pop())); break;  // BINPERSID
        case 'R': {                                     // REDUCE
          Obj* args = pop();
          Obj* fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b': {  // BUILD: OrderedDict's instance state (state_dict._metadata) is dropped
          pop();
          Obj* target = top();
          if (target->kind != Obj::kDict)
            refused(path_, std::string("BUILD (setting the state) of a ") + kind_name(target->kind));
          break;
        }
        case '.': {  // STOP
          Obj* result = pop();
          if (!stack_.empty() || !marks_.empty())
            corrupt(path_, "data.pkl stops with items left on its stack");
          return result;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "0x%02x", op);
          refused(path_, std::string("pickle opcode ") + hex);
        }
      }
    }
  }

 private:
  Obj* make(Obj::Kind k) {
    if (arena_.size() >= kMaxObjects) refused(path_, "more than a million pickle objects");
    arena_.push_back(std::make_unique<Obj>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  const uint8_t* take(uint64_t n) {
    if (static_cast<uint64_t>(end_ - p_) < n) corrupt(path_, "data.pkl is truncated");
    const uint8_t* r = p_;
    p_ += n;
    return r;
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', end_ - p_));
    if (nl == nullptr || nl - p_ > 256) corrupt(path_, "GLOBAL opcode without a short name line");
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }
  void push(Obj* o) { stack_.push_back(o); }
  void push_int(int64_t v) {
    Obj* o = make(Obj::kInt);
    o->i = v;
    push(o);
  }
  void push_str(Obj::Kind k, uint64_t n) {
    const uint8_t* b = take(n);
    Obj* o = make(k);
    o->s.assign(reinterpret_cast<const char*>(b), n);
    push(o);
  }
  Obj* pop() {
    if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size()))
      corrupt(path_, "pickle stack underflow");
    Obj* o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Obj* top() {
    if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size()))
      corrupt(path_, "pickle stack underflow");
    return stack_.back();
  }
  std::vector<Obj*> pop_mark() {
    if (marks_.empty()) corrupt(path_, "pickle opcode without its MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Obj*> out(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return out;
  }
  Obj* memo_get(uint32_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) corrupt(path_, "pickle reads memo entry " + std::to_string(k) + " before writing it");
    return it->second;
  }
  Obj* list_of(Obj* o) {
    if (o->kind != Obj::kList) refused(path_, std::string("APPEND to a ") + kind_name(o->kind));
    return o;
  }
  void set_item(Obj* d, Obj* k, Obj* v) {
    if (d->kind != Obj::kDict) refused(path_, std::string("SETITEM on a ") + kind_name(d->kind));
    d->entries.emplace_back(k, v);
  }

  Obj* global(const std::string& module, const std::string& name) {
    static const std::map<std::string, DType> kStorages = {
        {"FloatStorage", DType::kF32}, {"HalfStorage", DType::kF16},
        {"BFloat16Storage", DType::kBF16}, {"DoubleStorage", DType::kF64},
        {"LongStorage", DType::kI64}, {"IntStorage", DType::kI32}};
    if (module == "torch") {
      auto it = kStorages.find(name);
      if (it != kStorages.end()) {
        Obj* o = make(Obj::kStorageClass);
        o->dtype = it->second;
        o->s = name;
        return o;
      }
    }
    Obj* o = make(Obj::kCallable);
    o->s = module + "." + name;
    if (module == "collections" && name == "OrderedDict")
      o->callable = Callable::kOrderedDict;
    else if (module == "torch._utils" && name == "_rebuild_tensor_v2")
      o->callable = Callable::kRebuildTensor;
    else if (module == "torch._utils" && name == "_rebuild_parameter")
      o->callable = Callable::kRebuildParameter;
    else
      refused(path_, "the pickle names the global '" + printable(module + "." + name) + "'");
    return o;
  }

  static std::string printable(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
  }

  static bool is_int_tuple(const Obj* o) {
    if (o->kind != Obj::kTuple) return false;
    for (const Obj* x : o->items)
      if (x->kind != Obj::kInt) return false;
    return true;
  }

  Obj* reduce(Obj* fn, Obj* args) {
    if (fn->kind != Obj::kCallable)
      refused(path_, std::string("REDUCE (a call) of a ") + kind_name(fn->kind));
    if (args->kind != Obj::kTuple) corrupt(path_, "REDUCE arguments are not a tuple");
    const std::vector<Obj*>& a = args->items;
    switch (fn->callable) {
      case Callable::kOrderedDict:
        if (!a.empty()) refused(path_, "collections.OrderedDict called with arguments");
        return make(Obj::kDict);
      case Callable::kRebuildParameter:
        if (a.size() != 3 || a[0]->kind != Obj::kTensor)
          corrupt(path_, "torch._utils._rebuild_parameter without a tensor");
        return a[0];
      case Callable::kRebuildTensor: {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (a.size() < 6 || a.size() > 7 || a[0]->kind != Obj::kStorage || a[1]->kind != Obj::kInt ||
            !is_int_tuple(a[2]) || !is_int_tuple(a[3]) || a[2]->items.size() != a[3]->items.size())
          corrupt(path_, "torch._utils._rebuild_tensor_v2 with unexpected arguments");
        if (a[5]->kind != Obj::kDict || !a[5]->entries.empty())
          refused(path_, "a tensor with backward hooks");
        Obj* t = make(Obj::kTensor);
        t->storage = a[0];
        t->offset = a[1]->i;
        for (const Obj* x : a[2]->items) t->size.push_back(x->i);
        for (const Obj* x : a[3]->items) t->stride.push_back(x->i);
        return t;
      }
    }
    refused(path_, "an unknown call");
  }

  Obj* persistent_load(Obj* pid) {
    // ('storage', storage class, key, location, numel)
    if (pid->kind != Obj::kTuple || pid->items.size() != 5 || pid->items[0]->kind != Obj::kStr ||
        pid->items[0]->s != "storage")
      refused(path_, "a persistent id that is not a ('storage', ...) tuple");
    const std::vector<Obj*>& a = pid->items;
    if (a[1]->kind != Obj::kStorageClass)
      refused(path_, "a storage of a class other than Float/Half/BFloat16/Double/Long/Int");
    if (a[2]->kind != Obj::kStr || a[3]->kind != Obj::kStr || a[4]->kind != Obj::kInt || a[4]->i < 0)
      corrupt(path_, "a storage id with a malformed key, location or size");
    auto known = storages_.find(a[2]->s);
    if (known != storages_.end()) {
      if (known->second->dtype != a[1]->dtype || known->second->i != a[4]->i)
        corrupt(path_, "storage '" + printable(a[2]->s) + "' is named with two types or sizes");
      return known->second;
    }
    const std::string entry = prefix_ + "/data/" + a[2]->s;
    auto z = zip_.find(entry);
    if (z == zip_.end())
      corrupt(path_, "storage '" + printable(a[2]->s) + "' has no entry '" + printable(entry) + "' in the archive");
    const uint64_t numel = static_cast<uint64_t>(a[4]->i);
    const uint64_t es = dtype_size(a[1]->dtype);
    if (numel > z->second.size / es)
      corrupt(path_, "storage '" + printable(a[2]->s) + "' claims " + std::to_string(numel) + " " +
                         dtype_name(a[1]->dtype) + " elements (" + std::to_string(numel) +
                         " x " + std::to_string(es) + " bytes) but its entry holds " +
                         std::to_string(z->second.size) + " bytes");
    Obj* s = make(Obj::kStorage);
    s->s = a[2]->s;
    s->dtype = a[1]->dtype;
    s->i = a[4]->i;
    storages_[s->s] = s;
    return s;
  }

  static constexpr size_t kMaxObjects = 1'000'000;  // a state dict needs ~20 per tensor
  std::string path_;
  const uint8_t* p_;
  const uint8_t* end_;
  const std::map<std::string, ZipEntry>& zip_;
  std::string prefix_;
  std::vector<std::unique_ptr<Obj>> arena_;
  std::vector<Obj*> stack_;
  std::vector<size_t> marks_;
  std::map<uint32_t, Obj*> memo_;
  std::map<std::string, Obj*> storages_;
};

}  // namespace

TorchCheckpoint read_torch_checkpoint(const std::string& path) {
  TorchCheckpoint out;
  out.file = MappedFile::open(path);
  const MappedFile& f = *out.file;
  if (f.size() >= 1 && f.data()[0] == 0x80)
    bad(path, "this is a legacy (pre-1.6) torch serialization, not a zip archive; re-save it "
              "with a recent torch (torch.save(torch.load(f), f)) or convert it to safetensors");
  if (f.size() < 4 || std::memcmp(f.data(), "PK\x03\x04", 4) != 0)
    bad(path, "not a torch.save zip archive (no zip signature); re-save it with a recent torch");
  const std::map<std::string, ZipEntry> zip = read_zip(f);
  // The pickle is "<archive>/data.pkl"; storages are "<archive>/data/<key>".
  std::string prefix;
  const ZipEntry* pkl = nullptr;
  for (const auto& [name, e] : zip) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      if (pkl != nullptr) corrupt(path, "the archive holds two data.pkl records");
      prefix = name.substr(0, slash);
      pkl = &e;
    }
  }
  if (pkl == nullptr)
    corrupt(path, "the archive has no <name>/data.pkl record (not a torch.save checkpoint; a "
                  "TorchScript or other zip?)");
  auto bo = zip.find(prefix + "/byteorder");
  if (bo != zip.end() && std::string(reinterpret_cast<const char*>(bo->second.data), bo->second.size) != "little")
    bad(path, "the tensors are stored big-endian; re-save the checkpoint on a little-endian machine");

  Unpickler up(path, pkl->data, pkl->size, zip, prefix);
  const Obj* root = up.run();
  if (root->kind != Obj::kDict)
    refused(path, std::string("a top-level ") + kind_name(root->kind) + " instead of a dict of tensors");
  for (const auto& [k, v] : root->entries) {
    if (k->kind != Obj::kStr) corrupt(path, "a state dict key that is not a string");
    if (v->kind != Obj::kTensor)
      refused(path, "entry '" + k->s + "' holding a " + kind_name(v->kind) + " instead of a tensor");
    const Obj& st = *v->storage;
    TensorInfo info;
    info.name = k->s;
    info.dtype = st.dtype;
    const uint64_t es = dtype_size(st.dtype);
    uint64_t numel = 1;
    uint64_t last = static_cast<uint64_t>(v->offset);  // highest element index read
    if (v->offset < 0) corrupt(path, "tensor '" + k->s + "' has a negative storage offset");
    for (size_t d = 0; d < v->size.size(); ++d) {
      const int64_t n = v->size[d], s = v->stride[d];
      if (n < 0 || s < 0) corrupt(path, "tensor '" + k->s + "' has a negative size or stride");
      if (n != 0 && numel > (uint64_t{1} << 40) / static_cast<uint64_t>(n))
        corrupt(path, "tensor '" + k->s + "' has an absurd shape");
      numel *= static_cast<uint64_t>(n);
      info.shape.push_back(n);
    }
    bool contiguous = true;
    if (numel > 0) {
      uint64_t expect = 1;
      for (size_t d = v->size.size(); d-- > 0;) {
        const uint64_t n = static_cast<uint64_t>(v->size[d]), s = static_cast<uint64_t>(v->stride[d]);
        if (n != 1 && s != expect) contiguous = false;
        if (s > (uint64_t{1} << 40)) corrupt(path, "tensor '" + k->s + "' has an absurd stride");
        last += (n - 1) * s;
        expect *= n;
      }
      if (last >= static_cast<uint64_t>(st.i))
        corrupt(path, "tensor '" + k->s + "' " + shape_str(info.shape) + " at offset " +
                          std::to_string(v->offset) + " reads element " + std::to_string(last) +
                          " of a storage of " + std::to_string(st.i) + " elements");
    }
    const ZipEntry& e = zip.at(prefix + "/data/" + st.s);
    info.nbytes = numel * es;
    if (contiguous || numel == 0) {
      info.data = e.data + (numel > 0 ? static_cast<uint64_t>(v->offset) * es : 0);
      info.file = out.file;
    } else {  // a strided view: gather it into an owned buffer
      auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[info.nbytes]);
      std::vector<int64_t> idx(v->size.size(), 0);
      for (uint64_t n = 0; n < numel; ++n) {
        uint64_t src = static_cast<uint64_t>(v->offset);
        for (size_t d = 0; d < idx.size(); ++d) src += static_cast<uint64_t>(idx[d] * v->stride[d]);
        std::memcpy(buf.get() + n * es, e.data + src * es, es);
        for (size_t d = idx.size(); d-- > 0;) {
          if (++idx[d] < v->size[d]) break;
          idx[d] = 0;
        }
      }
      info.data = buf.get();
      info.owner = buf;
      ++out.materialised;
    }
    out.tensors.push_back(std::move(info));
  }
  return out;
}

}  // namespace musicgen
