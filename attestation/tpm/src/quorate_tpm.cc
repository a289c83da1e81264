// quorate_tpm — a small Node-API binding over tpm2-tss ESYS and the TCTI loader.
//
// One `Context` = one TCTI connection + one ESYS context. Every operation is a coarse job (one
// JS call → one job → possibly several TPM commands) run on the libuv thread pool by an
// AsyncWorker, under the context's mutex, so ESYS is never used by two threads at once. The
// TypeScript side additionally queues jobs per context so pool threads never wait on the mutex.
//
// Transient objects and sessions are flushed in every path (RAII guards below): a TPM without a
// resource manager (swtpm, /dev/tpm0) has only 3 object slots, so one leak would break the next
// command. Persistent objects that the caller names by handle are kept as cached ESYS_TRs
// (Esys_TR_FromTPMPublic costs a ReadPublic round trip) and dropped whenever a command on them
// fails.
#include <napi.h>

#include <tss2_esys.h>
#include <tss2_mu.h>
#include <tss2_rc.h>
#include <tss2_tctildr.h>

#ifdef __linux__
#include <dirent.h>
#include <fcntl.h>
#endif

#include <cstdint>
#include <set>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

// ---- a tiny value tree built on the worker thread and converted to JS on the main thread ----
struct Val {
  enum Kind { Undef, Num, Big, Bool, Str, Buf, Arr, Obj } k = Undef;
  double n = 0;
  uint64_t big = 0;
  bool b = false;
  std::string s;
  Bytes buf;
  std::vector<Val> arr;
  std::vector<std::pair<std::string, Val>> obj;

  static Val num(double v) { Val x; x.k = Num; x.n = v; return x; }
  static Val bigint(uint64_t v) { Val x; x.k = Big; x.big = v; return x; }
  static Val boolean(bool v) { Val x; x.k = Bool; x.b = v; return x; }
  static Val str(std::string v) { Val x; x.k = Str; x.s = std::move(v); return x; }
  static Val bytes(Bytes v) { Val x; x.k = Buf; x.buf = std::move(v); return x; }
  static Val bytes(const uint8_t* p, size_t len) { return bytes(Bytes(p, p + len)); }
  static Val array() { Val x; x.k = Arr; return x; }
  static Val object() { Val x; x.k = Obj; return x; }
  Val& set(const char* key, Val v) { obj.emplace_back(key, std::move(v)); return *this; }
  Val& push(Val v) { arr.push_back(std::move(v)); return *this; }
};

Napi::Value ToJs(Napi::Env env, const Val& v) {
  switch (v.k) {
    case Val::Undef: return env.Undefined();
    case Val::Num: return Napi::Number::New(env, v.n);
    case Val::Big: return Napi::BigInt::New(env, v.big);
    case Val::Bool: return Napi::Boolean::New(env, v.b);
    case Val::Str: return Napi::String::New(env, v.s);
    case Val::Buf: {
      auto ab = Napi::ArrayBuffer::New(env, v.buf.size());
      if (!v.buf.empty()) std::memcpy(ab.Data(), v.buf.data(), v.buf.size());
      return Napi::Uint8Array::New(env, v.buf.size(), ab, 0);
    }
    case Val::Arr: {
      auto a = Napi::Array::New(env, v.arr.size());
      for (size_t i = 0; i < v.arr.size(); i++) a.Set(static_cast<uint32_t>(i), ToJs(env, v.arr[i]));
      return a;
    }
    case Val::Obj: {
      auto o = Napi::Object::New(env);
      for (const auto& kv : v.obj) o.Set(kv.first, ToJs(env, kv.second));
      return o;
    }
  }
  return env.Undefined();
}

// ---- failures ----
struct Failure {
  TSS2_RC rc = 0;        // 0 when the failure is ours, not the TSS's
  std::string op;        // the ESYS function or step that failed
  std::string message;   // extra context
};

void Check(TSS2_RC rc, const char* op, const std::string& msg = "") {
  if (rc != TSS2_RC_SUCCESS) throw Failure{rc, op, msg};
}
[[noreturn]] void Fail(const char* op, const std::string& msg) { throw Failure{0, op, msg}; }

// TPM 2.0 Part 2 §6.6: format-one response codes carry the error number in bits 0..5.
bool IsHandleError(TSS2_RC rc) {
  return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) != 0 && (rc & 0x3f) == (TPM2_RC_HANDLE & 0x3f);
}

std::string Hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// ---- RAII for ESYS outputs, transient objects/sessions and ESYS_TR metadata ----
template <typename T>
struct Out {
  T* p = nullptr;
  Out() = default;
  Out(const Out&) = delete;
  Out& operator=(const Out&) = delete;
  ~Out() { Esys_Free(p); }
  T** ptr() { Esys_Free(p); p = nullptr; return &p; }
  T* operator->() const { return p; }
  T& operator*() const { return *p; }
};

// Flushes a transient object or session from the TPM (and ESYS) when it goes out of scope.
struct Flush {
  ESYS_CONTEXT* ctx;
  ESYS_TR h = ESYS_TR_NONE;
  explicit Flush(ESYS_CONTEXT* c) : ctx(c) {}
  Flush(const Flush&) = delete;
  Flush& operator=(const Flush&) = delete;
  ~Flush() { if (h != ESYS_TR_NONE) Esys_FlushContext(ctx, h); }
};

// Releases ESYS metadata for a TPM-resident (persistent/NV) handle; nothing is sent to the TPM.
// Never use it on a handle that may be in Context::persistent: Esys_TR_FromTPMPublic returns the
// already-known ESYS_TR for a TPM handle, so closing "a new one" would close the cached one.
struct TrClose {
  ESYS_CONTEXT* ctx;
  ESYS_TR h = ESYS_TR_NONE;
  explicit TrClose(ESYS_CONTEXT* c) : ctx(c) {}
  TrClose(const TrClose&) = delete;
  TrClose& operator=(const TrClose&) = delete;
  ~TrClose() { if (h != ESYS_TR_NONE) Esys_TR_Close(ctx, &h); }
};

Bytes MarshalPublic(const TPMT_PUBLIC& pub) {
  uint8_t buf[sizeof(TPMT_PUBLIC)];
  size_t off = 0;
  Check(Tss2_MU_TPMT_PUBLIC_Marshal(&pub, buf, sizeof buf, &off), "Tss2_MU_TPMT_PUBLIC_Marshal");
  return Bytes(buf, buf + off);
}

// ---- TCG EK Credential Profile 2.x, Appendix B templates ----
enum EkKind { EK_RSA2048 = 0, EK_ECC_P384 = 1 };

// PolicyA = PolicySecret(TPM_RH_ENDORSEMENT); PolicyC = PolicyAuthorizeNV(0x01c07f01);
// PolicyB (high range) = PolicyOR(PolicyA, PolicyC). Digests from the profile, checked by
// recomputation: PolicyOR(A384, C384) = b26e7d28…0e12, the authPolicy swtpm's P-384 EK carries.
const uint8_t kPolicyASha256[32] = {
  0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
  0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
const uint8_t kPolicyASha384[48] = {
  0x8b, 0xbf, 0x22, 0x66, 0x53, 0x7c, 0x17, 0x1c, 0xb5, 0x6e, 0x40, 0x3c, 0x4d, 0xc1, 0xd4, 0xb6,
  0x4f, 0x43, 0x26, 0x11, 0xdc, 0x38, 0x6e, 0x6f, 0x53, 0x20, 0x50, 0xc3, 0x27, 0x8c, 0x93, 0x0e,
  0x14, 0x3e, 0x8b, 0xb1, 0x13, 0x38, 0x24, 0xcc, 0xb4, 0x31, 0x05, 0x38, 0x71, 0xc6, 0xdb, 0x53};
const uint8_t kPolicyCSha384[48] = {
  0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef,
  0x2b, 0x6a, 0x16, 0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5,
  0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6, 0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65};
const uint8_t kPolicyBSha384[48] = {
  0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a,
  0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca,
  0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12};

TPM2B_PUBLIC EkTemplate(EkKind kind) {
  TPM2B_PUBLIC t;
  std::memset(&t, 0, sizeof t);
  TPMT_PUBLIC& p = t.publicArea;
  if (kind == EK_RSA2048) {
    // Template L-1: RSA 2048, SHA-256, AES-128-CFB, PolicyA, unique = 256 zero bytes.
    p.type = TPM2_ALG_RSA;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p.authPolicy.size = 32;
    std::memcpy(p.authPolicy.buffer, kPolicyASha256, 32);
    p.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.rsaDetail.keyBits = 2048;
    p.parameters.rsaDetail.exponent = 0;
    p.unique.rsa.size = 256;
  } else {
    // Template H-3: ECC NIST P-384, SHA-384, AES-256-CFB, PolicyB-SHA384, userWithAuth, empty unique.
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA384;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED |
                         TPMA_OBJECT_DECRYPT;
    p.authPolicy.size = 48;
    std::memcpy(p.authPolicy.buffer, kPolicyBSha384, 48);
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    p.parameters.eccDetail.symmetric.keyBits.aes = 256;
    p.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 0;
    p.unique.ecc.y.size = 0;
  }
  return t;
}

// The attestation key: restricted ECDSA P-256 signing key, SHA-256 (TPM 2.0 Part 1 §25, "AK").
const TPMA_OBJECT kAkAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                  TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;

TPM2B_PUBLIC AkTemplate() {
  TPM2B_PUBLIC t;
  std::memset(&t, 0, sizeof t);
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = kAkAttributes;
  p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

// An existing object is reused as AK only if it has exactly the AK template's shape (the
// attributes may add noDA; anything else means it is someone else's key).
bool IsAkPublic(const TPMT_PUBLIC& p, std::string* why) {
  auto no = [why](const char* w) { if (why != nullptr) *why = w; return false; };
  if (p.type != TPM2_ALG_ECC) return no("not an ECC key");
  if (p.nameAlg != TPM2_ALG_SHA256) return no("name algorithm is not SHA-256");
  if ((p.objectAttributes & ~TPMA_OBJECT_NODA) != kAkAttributes) return no("attributes differ from a restricted signing key");
  if (p.authPolicy.size != 0) return no("has an authPolicy");
  const auto& e = p.parameters.eccDetail;
  if (e.curveID != TPM2_ECC_NIST_P256) return no("curve is not NIST P-256");
  if (e.scheme.scheme != TPM2_ALG_ECDSA || e.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256) return no("scheme is not ECDSA/SHA-256");
  if (e.symmetric.algorithm != TPM2_ALG_NULL) return no("has a symmetric algorithm (a storage key)");
  if (e.kdf.scheme != TPM2_ALG_NULL) return no("has a KDF");
  return true;
}

// ---- the connection ----
class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {}
  ~Context() override { Finalize(); }

  std::mutex mu;
  ESYS_CONTEXT* esys = nullptr;
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  std::map<uint32_t, ESYS_TR> persistent;  // cached ESYS_TRs for persistent handles (AKs)
  uint16_t nvBufferMax = 0;
  Bytes ekPublic[2];  // EK public areas from the templates, learnt by CreateEk (see LoadEk)

  void Finalize() {
    for (auto& kv : persistent) { ESYS_TR h = kv.second; if (esys != nullptr) Esys_TR_Close(esys, &h); }
    persistent.clear();
    if (esys != nullptr) Esys_Finalize(&esys);
    if (tcti != nullptr) Tss2_TctiLdr_Finalize(&tcti);
    esys = nullptr;
    tcti = nullptr;
  }

  ESYS_CONTEXT* E() {
    if (esys == nullptr) Fail("context", "the TPM connection is closed");
    return esys;
  }

  ESYS_TR Persistent(uint32_t handle) {
    auto it = persistent.find(handle);
    if (it != persistent.end()) return it->second;
    ESYS_TR tr = ESYS_TR_NONE;
    Check(Esys_TR_FromTPMPublic(E(), handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr), "Esys_TR_FromTPMPublic",
          "no object at persistent handle " + Hex32(handle));
    persistent[handle] = tr;
    return tr;
  }
  void Forget(uint32_t handle) {
    auto it = persistent.find(handle);
    if (it == persistent.end()) return;
    ESYS_TR h = it->second;
    Esys_TR_Close(esys, &h);
    persistent.erase(it);
  }

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetRandom(const Napi::CallbackInfo& info);
  Napi::Value ReadClock(const Napi::CallbackInfo& info);
  Napi::Value Properties(const Napi::CallbackInfo& info);
  Napi::Value Handles(const Napi::CallbackInfo& info);
  Napi::Value PcrRead(const Napi::CallbackInfo& info);
  Napi::Value PcrExtend(const Napi::CallbackInfo& info);
  Napi::Value EkPublic(const Napi::CallbackInfo& info);
  Napi::Value NvRead(const Napi::CallbackInfo& info);
  Napi::Value EnsureAk(const Napi::CallbackInfo& info);
  Napi::Value ReadPublic(const Napi::CallbackInfo& info);
  Napi::Value Evict(const Napi::CallbackInfo& info);
  Napi::Value Quote(const Napi::CallbackInfo& info);
  Napi::Value ActivateCredential(const Napi::CallbackInfo& info);

  Napi::Value Run(const Napi::CallbackInfo& info, std::function<Val(Context&)> fn);
};

// One job: runs `fn` on a pool thread under the context's mutex; settles a promise.
class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, Context* ctx, std::function<Val(Context&)> fn)
      : Napi::AsyncWorker(env, "quorate_tpm"), deferred_(Napi::Promise::Deferred::New(env)), ctx_(ctx), fn_(std::move(fn)) {
    self_ = Napi::Persistent(ctx->Value());  // keep the context alive while the job runs
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    std::lock_guard<std::mutex> lock(ctx_->mu);
    try {
      result_ = fn_(*ctx_);
    } catch (const Failure& f) {
      failed_ = true;
      failure_ = f;
    } catch (const std::exception& e) {
      failed_ = true;
      failure_ = Failure{0, "addon", e.what()};
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!failed_) { deferred_.Resolve(ToJs(env, result_)); return; }
    std::string text = failure_.rc != 0 ? Tss2_RC_Decode(failure_.rc) : "";
    std::string msg = failure_.op;
    if (!failure_.message.empty()) msg += ": " + failure_.message;
    if (failure_.rc != 0) msg += " (" + Hex32(failure_.rc) + " " + text + ")";
    Napi::Error err = Napi::Error::New(env, msg);
    err.Set("rc", Napi::Number::New(env, failure_.rc));
    err.Set("rcText", Napi::String::New(env, text));
    err.Set("op", Napi::String::New(env, failure_.op));
    deferred_.Reject(err.Value());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference self_;
  Context* ctx_;
  std::function<Val(Context&)> fn_;
  Val result_;
  bool failed_ = false;
  Failure failure_;
};

Napi::Value Context::Run(const Napi::CallbackInfo& info, std::function<Val(Context&)> fn) {
  auto* job = new Job(info.Env(), this, std::move(fn));
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// ---- argument helpers (main thread) ----
uint32_t U32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d))) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a 32-bit unsigned integer");
  }
  return static_cast<uint32_t>(d);
}

Bytes BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what, size_t max) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array");
  }
  auto a = info[i].As<Napi::Uint8Array>();
  if (a.ByteLength() > max) throw Napi::RangeError::New(info.Env(), std::string(what) + " is too long (max " + std::to_string(max) + " bytes)");
  return Bytes(a.Data(), a.Data() + a.ByteLength());
}

// [[hashAlgId, [pcr, ...]], ...] → TPML_PCR_SELECTION (sizeofSelect 3, or 4 when PCRs ≥ 24 are named)
TPML_PCR_SELECTION SelectionArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (!info[i].IsArray()) throw Napi::TypeError::New(env, "selection must be an array");
  auto arr = info[i].As<Napi::Array>();
  TPML_PCR_SELECTION sel;
  std::memset(&sel, 0, sizeof sel);
  if (arr.Length() > TPM2_NUM_PCR_BANKS) throw Napi::RangeError::New(env, "too many PCR banks in selection");
  for (uint32_t b = 0; b < arr.Length(); b++) {
    Napi::Value e = arr.Get(b);
    if (!e.IsArray() || e.As<Napi::Array>().Length() != 2) throw Napi::TypeError::New(env, "selection entries are [hashAlg, pcrs]");
    auto pair = e.As<Napi::Array>();
    Napi::Value alg = pair.Get(0u);
    Napi::Value pcrs = pair.Get(1u);
    if (!alg.IsNumber() || !pcrs.IsArray()) throw Napi::TypeError::New(env, "selection entries are [hashAlg, pcrs]");
    TPMS_PCR_SELECTION& s = sel.pcrSelections[b];
    s.hash = static_cast<TPMI_ALG_HASH>(alg.As<Napi::Number>().Uint32Value());
    s.sizeofSelect = 3;
    auto list = pcrs.As<Napi::Array>();
    for (uint32_t j = 0; j < list.Length(); j++) {
      Napi::Value v = list.Get(j);
      if (!v.IsNumber()) throw Napi::TypeError::New(env, "PCR indexes must be numbers");
      uint32_t pcr = v.As<Napi::Number>().Uint32Value();
      if (pcr >= TPM2_MAX_PCRS) throw Napi::RangeError::New(env, "PCR index out of range");
      if (pcr >= 24 && s.sizeofSelect < 4) s.sizeofSelect = 4;
      s.pcrSelect[pcr / 8] |= static_cast<BYTE>(1u << (pcr % 8));
    }
  }
  sel.count = arr.Length();
  return sel;
}

bool SelectionEmpty(const TPML_PCR_SELECTION& s) {
  for (uint32_t b = 0; b < s.count; b++)
    for (uint32_t i = 0; i < s.pcrSelections[b].sizeofSelect; i++)
      if (s.pcrSelections[b].pcrSelect[i] != 0) return false;
  return true;
}

// ---- TPM-side building blocks (worker thread, mutex held) ----
struct Ek {
  Flush obj;        // a transient EK from CreatePrimary, flushed at scope end
  ESYS_TR use = ESYS_TR_NONE;  // the EK to use: obj.h, or a persistent EK with the same public
  TPMT_PUBLIC pub;
  explicit Ek(ESYS_CONTEXT* c) : obj(c) {}
};

void CreateEk(ESYS_CONTEXT* e, EkKind kind, Ek& ek) {
  TPM2B_SENSITIVE_CREATE sens;
  std::memset(&sens, 0, sizeof sens);
  TPM2B_PUBLIC tmpl = EkTemplate(kind);
  TPM2B_DATA outside = {};
  TPML_PCR_SELECTION pcrs = {};
  Out<TPM2B_PUBLIC> pub;
  Check(Esys_CreatePrimary(e, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                           &outside, &pcrs, &ek.obj.h, pub.ptr(), nullptr, nullptr, nullptr),
        "Esys_CreatePrimary", kind == EK_RSA2048 ? "EK RSA-2048 (template L-1)" : "EK ECC P-384 (template H-3)");
  ek.pub = pub->publicArea;
  ek.use = ek.obj.h;
}

// A policy session that satisfies the EK's authPolicy (PolicyA, or PolicyB = OR(A, C) for H-3).
// Policy sessions are reset after each successful authorization, so call again before reuse.
void SatisfyEkPolicy(ESYS_CONTEXT* e, EkKind kind, ESYS_TR session) {
  Out<TPM2B_TIMEOUT> timeout;
  Out<TPMT_TK_AUTH> ticket;
  Check(Esys_PolicySecret(e, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, nullptr,
                          nullptr, nullptr, 0, timeout.ptr(), ticket.ptr()),
        "Esys_PolicySecret", "endorsement hierarchy authorization for the EK policy");
  if (kind == EK_ECC_P384) {
    TPML_DIGEST list;
    std::memset(&list, 0, sizeof list);
    list.count = 2;
    list.digests[0].size = 48;
    std::memcpy(list.digests[0].buffer, kPolicyASha384, 48);
    list.digests[1].size = 48;
    std::memcpy(list.digests[1].buffer, kPolicyCSha384, 48);
    Check(Esys_PolicyOR(e, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &list), "Esys_PolicyOR", "EK PolicyB");
  }
}

void StartEkSession(ESYS_CONTEXT* e, EkKind kind, Flush& session) {
  TPMT_SYM_DEF sym;
  std::memset(&sym, 0, sizeof sym);
  sym.algorithm = TPM2_ALG_NULL;
  Check(Esys_StartAuthSession(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr,
                              TPM2_SE_POLICY, &sym, kind == EK_RSA2048 ? TPM2_ALG_SHA256 : TPM2_ALG_SHA384, &session.h),
        "Esys_StartAuthSession");
  // Keep the session after each use so that exactly one place (the Flush guard) ends it.
  Check(Esys_TRSess_SetAttributes(e, session.h, TPMA_SESSION_CONTINUESESSION, 0xff), "Esys_TRSess_SetAttributes");
  SatisfyEkPolicy(e, kind, session.h);
}

// TCG EK Credential Profile: where provisioning software persists the EKs.
const uint32_t kEkPersistentHandle[2] = {0x81010001, 0x81010016};

// The EK for ActivateCredential / AK creation. Creating the RSA EK from its seed costs ~80 ms on
// swtpm (far more on hardware), so when the TCG-standard persistent handle holds a key whose
// public area is byte-identical to the one the template produces (same seed + same template =
// same key; learnt once per connection), that persistent EK is used instead.
void LoadEk(Context& c, EkKind kind, Ek& ek);

Val PublicVal(ESYS_CONTEXT* e, ESYS_TR obj, uint32_t handle, bool* isAk = nullptr, std::string* notAk = nullptr) {
  Out<TPM2B_PUBLIC> pub;
  Out<TPM2B_NAME> name;
  Check(Esys_ReadPublic(e, obj, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, pub.ptr(), name.ptr(), nullptr), "Esys_ReadPublic");
  Val v = Val::object();
  v.set("handle", Val::num(handle));
  v.set("public", Val::bytes(MarshalPublic(pub->publicArea)));
  v.set("name", Val::bytes(name->name, name->size));
  std::string why;
  bool ak = IsAkPublic(pub->publicArea, &why);
  v.set("isAk", Val::boolean(ak));
  v.set("notAkReason", Val::str(why));
  if (isAk != nullptr) *isAk = ak;
  if (notAk != nullptr) *notAk = why;
  return v;
}

EkKind EkKindArg(const Napi::CallbackInfo& info, size_t i) {
  uint32_t k = U32(info, i, "ekKind");
  if (k > 1) throw Napi::RangeError::New(info.Env(), "ekKind must be 0 (RSA-2048) or 1 (ECC P-384)");
  return static_cast<EkKind>(k);
}

void LoadEk(Context& c, EkKind kind, Ek& ek) {
  ESYS_CONTEXT* e = c.E();
  const Bytes& known = c.ekPublic[kind];
  if (!known.empty()) {
    const uint32_t h = kEkPersistentHandle[kind];
    ESYS_TR tr = ESYS_TR_NONE;
    auto it = c.persistent.find(h);
    TSS2_RC rc = TSS2_RC_SUCCESS;
    if (it != c.persistent.end()) tr = it->second;
    else rc = Esys_TR_FromTPMPublic(e, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
    if (rc == TSS2_RC_SUCCESS) {
      c.persistent[h] = tr;
      Out<TPM2B_PUBLIC> pub;
      if (Esys_ReadPublic(e, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, pub.ptr(), nullptr, nullptr) == TSS2_RC_SUCCESS &&
          MarshalPublic(pub->publicArea) == known) {
        ek.use = tr;
        ek.pub = pub->publicArea;
        return;
      }
      c.Forget(h);
    }
  }
  CreateEk(e, kind, ek);
  c.ekPublic[kind] = MarshalPublic(ek.pub);
}

// The descriptors this process has open (Linux: /proc/self/fd; elsewhere none are known).
static std::set<int> OpenFds() {
  std::set<int> fds;
#ifdef __linux__
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  const int self = dirfd(d);
  while (struct dirent* e = readdir(d)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && fd != self) fds.insert(static_cast<int>(fd));
  }
  closedir(d);
#endif
  return fds;
}

// tpm2-tss opens its sockets (swtpm, mssim) and /dev/tpmrm0 without close-on-exec, so every child
// process started while a context is open inherits them, and with swtpm — one connection at a
// time — a child that keeps one blocks the TPM for good. Mark what the TCTI opened close-on-exec.
// (Descriptors another thread opened meanwhile get the flag too: Node and libuv open everything
// close-on-exec already, so that changes nothing for them.)
static void CloseOnExecSince(const std::set<int>& before) {
#ifdef __linux__
  for (int fd : OpenFds()) {
    if (before.count(fd) != 0) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
#else
  (void)before;
#endif
}

// ---- methods ----
Napi::Value Context::Open(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "tcti must be a string");
  std::string conf = info[0].As<Napi::String>();
  return Run(info, [conf](Context& c) {
    if (c.esys != nullptr) Fail("open", "already open");
    const std::set<int> before = OpenFds();
    TSS2_RC init = Tss2_TctiLdr_Initialize(conf.c_str(), &c.tcti);
    CloseOnExecSince(before);
    Check(init, "Tss2_TctiLdr_Initialize", "TCTI '" + conf + "'");
    TSS2_RC rc = Esys_Initialize(&c.esys, c.tcti, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
      Tss2_TctiLdr_Finalize(&c.tcti);
      c.tcti = nullptr;
      c.esys = nullptr;
      Check(rc, "Esys_Initialize");
    }
    return Val();
  });
}

Napi::Value Context::Close(const Napi::CallbackInfo& info) {
  return Run(info, [](Context& c) { c.Finalize(); return Val(); });
}

Napi::Value Context::GetRandom(const Napi::CallbackInfo& info) {
  uint32_t n = U32(info, 0, "bytes");
  if (n > 65536) throw Napi::RangeError::New(info.Env(), "at most 65536 random bytes per call");
  return Run(info, [n](Context& c) {
    Bytes out;
    out.reserve(n);
    while (out.size() < n) {
      Out<TPM2B_DIGEST> r;
      uint16_t want = static_cast<uint16_t>(std::min<size_t>(n - out.size(), sizeof(r->buffer)));
      Check(Esys_GetRandom(c.E(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, r.ptr()), "Esys_GetRandom");
      if (r->size == 0) Fail("Esys_GetRandom", "the TPM returned no bytes");
      out.insert(out.end(), r->buffer, r->buffer + std::min<size_t>(r->size, n - out.size()));
    }
    return Val::bytes(std::move(out));
  });
}

Napi::Value Context::ReadClock(const Napi::CallbackInfo& info) {
  return Run(info, [](Context& c) {
    Out<TPMS_TIME_INFO> t;
    Check(Esys_ReadClock(c.E(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, t.ptr()), "Esys_ReadClock");
    Val v = Val::object();
    v.set("time", Val::bigint(t->time));
    v.set("clock", Val::bigint(t->clockInfo.clock));
    v.set("resetCount", Val::num(t->clockInfo.resetCount));
    v.set("restartCount", Val::num(t->clockInfo.restartCount));
    v.set("safe", Val::boolean(t->clockInfo.safe != 0));
    return v;
  });
}

// properties(first, count) → [[property, value], ...] from TPM2_CAP_TPM_PROPERTIES
Napi::Value Context::Properties(const Napi::CallbackInfo& info) {
  uint32_t first = U32(info, 0, "first");
  uint32_t count = U32(info, 1, "count");
  return Run(info, [first, count](Context& c) {
    Val arr = Val::array();
    uint32_t prop = first;
    const uint64_t end = static_cast<uint64_t>(first) + count;
    TPMI_YES_NO more = TPM2_YES;
    while (more == TPM2_YES && prop < end) {
      Out<TPMS_CAPABILITY_DATA> cap;
      Check(Esys_GetCapability(c.E(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, prop,
                               static_cast<uint32_t>(std::min<uint64_t>(end - prop, TPM2_MAX_TPM_PROPERTIES)), &more, cap.ptr()),
            "Esys_GetCapability", "TPM properties");
      const auto& l = cap->data.tpmProperties;
      if (l.count == 0) break;
      for (uint32_t i = 0; i < l.count && l.tpmProperty[i].property < end; i++) {
        arr.push(Val::array().push(Val::num(l.tpmProperty[i].property)).push(Val::num(l.tpmProperty[i].value)));
      }
      prop = l.tpmProperty[l.count - 1].property + 1;
    }
    return arr;
  });
}

// handles(first) → [handle, ...] of first's type (TPM2_CAP_HANDLES), e.g. 0x80000000 transient
Napi::Value Context::Handles(const Napi::CallbackInfo& info) {
  uint32_t first = U32(info, 0, "first");
  return Run(info, [first](Context& c) {
    Val arr = Val::array();
    uint32_t h = first;
    TPMI_YES_NO more = TPM2_YES;
    while (more == TPM2_YES) {
      Out<TPMS_CAPABILITY_DATA> cap;
      Check(Esys_GetCapability(c.E(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, h, TPM2_MAX_CAP_HANDLES,
                               &more, cap.ptr()),
            "Esys_GetCapability", "handles");
      const auto& l = cap->data.handles;
      if (l.count == 0) break;
      for (uint32_t i = 0; i < l.count; i++) arr.push(Val::num(l.handle[i]));
      if (l.handle[l.count - 1] == 0xffffffffu) break;
      h = l.handle[l.count - 1] + 1;
    }
    return arr;
  });
}

// pcrRead(selection) → { updateCounter, values: [[alg, pcr, digest], ...] }. TPM2_PCR_Read returns
// at most 8 digests per call (TPML_DIGEST); loop, removing what was returned, and start over if
// the update counter moves in between so all values come from one PCR state.
Napi::Value Context::PcrRead(const Napi::CallbackInfo& info) {
  TPML_PCR_SELECTION want = SelectionArg(info, 0);
  return Run(info, [want](Context& c) {
    for (int attempt = 0; attempt < 5; attempt++) {
      TPML_PCR_SELECTION left = want;
      Val values = Val::array();
      uint32_t counter = 0;
      bool first = true, moved = false;
      while (!SelectionEmpty(left)) {
        uint32_t upd = 0;
        Out<TPML_PCR_SELECTION> got;
        Out<TPML_DIGEST> dig;
        Check(Esys_PCR_Read(c.E(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &left, &upd, got.ptr(), dig.ptr()), "Esys_PCR_Read");
        if (first) { counter = upd; first = false; } else if (upd != counter) { moved = true; break; }
        uint32_t k = 0;
        for (uint32_t b = 0; b < got->count; b++) {
          const TPMS_PCR_SELECTION& s = got->pcrSelections[b];
          for (uint32_t pcr = 0; pcr < s.sizeofSelect * 8u; pcr++) {
            if ((s.pcrSelect[pcr / 8] & (1u << (pcr % 8))) == 0) continue;
            if (k >= dig->count) Fail("Esys_PCR_Read", "fewer digests than selected PCRs");
            values.push(Val::array().push(Val::num(s.hash)).push(Val::num(pcr)).push(Val::bytes(dig->digests[k].buffer, dig->digests[k].size)));
            k++;
            for (uint32_t lb = 0; lb < left.count; lb++) {
              if (left.pcrSelections[lb].hash == s.hash) left.pcrSelections[lb].pcrSelect[pcr / 8] &= static_cast<BYTE>(~(1u << (pcr % 8)));
            }
          }
        }
        if (k == 0) {
          std::string banks;
          for (uint32_t lb = 0; lb < left.count; lb++) {
            for (uint32_t i = 0; i < left.pcrSelections[lb].sizeofSelect; i++) {
              if (left.pcrSelections[lb].pcrSelect[i] != 0) { banks += (banks.empty() ? "" : ",") + Hex32(left.pcrSelections[lb].hash); break; }
            }
          }
          Fail("Esys_PCR_Read", "the TPM returned no values for the remaining selection (PCR bank(s) " + banks + " not active, or PCR index not implemented)");
        }
      }
      if (moved) continue;
      Val v = Val::object();
      v.set("updateCounter", Val::num(counter));
      v.set("values", std::move(values));
      return v;
    }
    Fail("Esys_PCR_Read", "PCRs kept changing while being read");
  });
}

// pcrExtend(pcr, [[alg, digest], ...])
Napi::Value Context::PcrExtend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t pcr = U32(info, 0, "pcr");
  if (pcr >= TPM2_MAX_PCRS) throw Napi::RangeError::New(env, "PCR index out of range");
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "digests must be an array");
  auto arr = info[1].As<Napi::Array>();
  TPML_DIGEST_VALUES vals;
  std::memset(&vals, 0, sizeof vals);
  if (arr.Length() == 0 || arr.Length() > TPM2_NUM_PCR_BANKS) throw Napi::RangeError::New(env, "1 to 16 digests expected");
  for (uint32_t i = 0; i < arr.Length(); i++) {
    auto pair = arr.Get(i).As<Napi::Array>();
    vals.digests[i].hashAlg = static_cast<TPMI_ALG_HASH>(pair.Get(0u).As<Napi::Number>().Uint32Value());
    Napi::Value d = pair.Get(1u);
    if (!d.IsTypedArray()) throw Napi::TypeError::New(env, "digest must be a Uint8Array");
    auto u = d.As<Napi::Uint8Array>();
    if (u.ByteLength() > sizeof(TPMU_HA)) throw Napi::RangeError::New(env, "digest too long");
    std::memcpy(&vals.digests[i].digest, u.Data(), u.ByteLength());
  }
  vals.count = arr.Length();
  return Run(info, [pcr, vals](Context& c) {
    Check(Esys_PCR_Extend(c.E(), ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &vals), "Esys_PCR_Extend",
          "PCR " + std::to_string(pcr));
    return Val();
  });
}

// ekPublic(kind) → TPMT_PUBLIC bytes of the EK created from the standard template (then flushed)
Napi::Value Context::EkPublic(const Napi::CallbackInfo& info) {
  EkKind kind = EkKindArg(info, 0);
  return Run(info, [kind](Context& c) {
    Ek ek(c.E());
    CreateEk(c.E(), kind, ek);
    c.ekPublic[kind] = MarshalPublic(ek.pub);
    return Val::bytes(c.ekPublic[kind]);
  });
}

// nvRead(index) → bytes, or undefined when the index is not defined. Reads in chunks of
// TPM2_PT_NV_BUFFER_MAX (EK certificates are larger than one NV_Read).
Napi::Value Context::NvRead(const Napi::CallbackInfo& info) {
  uint32_t index = U32(info, 0, "nvIndex");
  return Run(info, [index](Context& c) {
    ESYS_CONTEXT* e = c.E();
    if (c.nvBufferMax == 0) {
      Out<TPMS_CAPABILITY_DATA> cap;
      TPMI_YES_NO more;
      c.nvBufferMax = 512;
      if (Esys_GetCapability(e, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1,
                             &more, cap.ptr()) == TSS2_RC_SUCCESS &&
          cap->data.tpmProperties.count == 1 && cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX) {
        uint32_t m = cap->data.tpmProperties.tpmProperty[0].value;
        c.nvBufferMax = static_cast<uint16_t>(std::min<uint32_t>(std::max<uint32_t>(m, 64), TPM2_MAX_NV_BUFFER_SIZE));
      }
    }
    TrClose nv(e);
    TSS2_RC rc = Esys_TR_FromTPMPublic(e, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv.h);
    if (IsHandleError(rc)) return Val();
    Check(rc, "Esys_TR_FromTPMPublic", "NV index " + Hex32(index));
    Out<TPM2B_NV_PUBLIC> pub;
    Check(Esys_NV_ReadPublic(e, nv.h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, pub.ptr(), nullptr), "Esys_NV_ReadPublic");
    const TPMA_NV attrs = pub->nvPublic.attributes;
    const uint16_t size = pub->nvPublic.dataSize;
    if ((attrs & TPMA_NV_WRITTEN) == 0) return Val();
    ESYS_TR auth = (attrs & TPMA_NV_AUTHREAD) != 0 ? nv.h : (attrs & TPMA_NV_OWNERREAD) != 0 ? ESYS_TR_RH_OWNER : nv.h;
    Bytes out;
    out.reserve(size);
    while (out.size() < size) {
      uint16_t n = static_cast<uint16_t>(std::min<size_t>(size - out.size(), c.nvBufferMax));
      Out<TPM2B_MAX_NV_BUFFER> d;
      Check(Esys_NV_Read(e, auth, nv.h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, static_cast<uint16_t>(out.size()), d.ptr()),
            "Esys_NV_Read", "NV index " + Hex32(index) + " at offset " + std::to_string(out.size()));
      if (d->size == 0) Fail("Esys_NV_Read", "the TPM returned no data");
      out.insert(out.end(), d->buffer, d->buffer + d->size);
    }
    out.resize(size);
    return Val::bytes(std::move(out));
  });
}

// readPublic(handle) → { handle, public, name, isAk, notAkReason } or undefined when no object is there
Napi::Value Context::ReadPublic(const Napi::CallbackInfo& info) {
  uint32_t handle = U32(info, 0, "handle");
  return Run(info, [handle](Context& c) {
    ESYS_CONTEXT* e = c.E();
    auto it = c.persistent.find(handle);
    if (it != c.persistent.end()) return PublicVal(e, it->second, handle);
    TrClose tr(e);
    TSS2_RC rc = Esys_TR_FromTPMPublic(e, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr.h);
    if (IsHandleError(rc)) return Val();
    Check(rc, "Esys_TR_FromTPMPublic", "handle " + Hex32(handle));
    return PublicVal(e, tr.h, handle);
  });
}

// ensureAk(handle, ekKind) → { handle, public, name, created }. Reuses the object at `handle` when
// it is an AK; otherwise creates one under the EK (the EK's policy needs PolicySecret(endorsement)
// for both Create and Load), persists it with EvictControl and flushes every transient.
Napi::Value Context::EnsureAk(const Napi::CallbackInfo& info) {
  uint32_t handle = U32(info, 0, "handle");
  if (handle < TPM2_PERSISTENT_FIRST || handle >= TPM2_PLATFORM_PERSISTENT) {
    throw Napi::RangeError::New(info.Env(), "AK handle must be an owner persistent handle (0x81000000-0x817fffff)");
  }
  EkKind kind = EkKindArg(info, 1);
  return Run(info, [handle, kind](Context& c) {
    ESYS_CONTEXT* e = c.E();
    // An object already there? (A cached ESYS_TR may be stale if someone evicted it meanwhile.)
    for (int pass = 0; pass < 2; pass++) {
      ESYS_TR tr = ESYS_TR_NONE;
      auto it = c.persistent.find(handle);
      const bool cached = it != c.persistent.end();
      TSS2_RC rc = cached ? TSS2_RC_SUCCESS : Esys_TR_FromTPMPublic(e, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
      if (cached) tr = it->second;
      if (rc != TSS2_RC_SUCCESS) {
        if (!IsHandleError(rc)) Check(rc, "Esys_TR_FromTPMPublic", "handle " + Hex32(handle));
        break;  // nothing there: create it
      }
      c.persistent[handle] = tr;  // quotes will use it next
      bool isAk = false;
      std::string why;
      Val v;
      try {
        v = PublicVal(e, tr, handle, &isAk, &why);
      } catch (const Failure& f) {
        c.Forget(handle);
        if (cached && IsHandleError(f.rc)) continue;  // stale cache entry: look again
        throw;
      }
      if (!isAk) {
        c.Forget(handle);
        Fail("ensureAk", "persistent handle " + Hex32(handle) + " holds an object that is not an AK (" + why + "); choose another handle or evict it");
      }
      v.set("created", Val::boolean(false));
      return v;
    }
    Ek ek(e);
    LoadEk(c, kind, ek);
    Flush session(e);
    StartEkSession(e, kind, session);
    TPM2B_SENSITIVE_CREATE sens;
    std::memset(&sens, 0, sizeof sens);
    TPM2B_PUBLIC tmpl = AkTemplate();
    TPM2B_DATA outside = {};
    TPML_PCR_SELECTION pcrs = {};
    Out<TPM2B_PRIVATE> priv;
    Out<TPM2B_PUBLIC> pub;
    Check(Esys_Create(e, ek.use, session.h, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, priv.ptr(), pub.ptr(),
                      nullptr, nullptr, nullptr),
          "Esys_Create", "AK under the EK");
    SatisfyEkPolicy(e, kind, session.h);
    Flush ak(e);
    Check(Esys_Load(e, ek.use, session.h, ESYS_TR_NONE, ESYS_TR_NONE, priv.p, pub.p, &ak.h), "Esys_Load", "AK");
    ESYS_TR persisted = ESYS_TR_NONE;
    TSS2_RC rc = Esys_EvictControl(e, ESYS_TR_RH_OWNER, ak.h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, handle, &persisted);
    if (rc != TSS2_RC_SUCCESS) {
      // Another process may have persisted an AK there meanwhile (TPM_RC_NV_DEFINED): use it.
      TrClose tr(e);
      bool isAk = false;
      if (c.persistent.find(handle) == c.persistent.end() &&
          Esys_TR_FromTPMPublic(e, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr.h) == TSS2_RC_SUCCESS) {
        Val v = PublicVal(e, tr.h, handle, &isAk);
        if (isAk) {
          c.persistent[handle] = tr.h;
          tr.h = ESYS_TR_NONE;  // now owned by the cache
          v.set("created", Val::boolean(false));
          return v;
        }
      }
      Check(rc, "Esys_EvictControl", "persist AK at " + Hex32(handle));
    }
    c.Forget(handle);
    c.persistent[handle] = persisted;
    // From Create's output and ESYS's own name computation: no TPM command (a ReadPublic could
    // fail with OBJECT_MEMORY when another client fills the slots, after the AK was persisted).
    Out<TPM2B_NAME> name;
    Check(Esys_TR_GetName(e, persisted, name.ptr()), "Esys_TR_GetName");
    Val v = Val::object();
    v.set("handle", Val::num(handle));
    v.set("public", Val::bytes(MarshalPublic(pub->publicArea)));
    v.set("name", Val::bytes(name->name, name->size));
    v.set("isAk", Val::boolean(true));
    v.set("notAkReason", Val::str(""));
    v.set("created", Val::boolean(true));
    return v;
  });
}

// evict(handle) → removes a persistent object (owner hierarchy); false when nothing was there
Napi::Value Context::Evict(const Napi::CallbackInfo& info) {
  uint32_t handle = U32(info, 0, "handle");
  if (handle < TPM2_PERSISTENT_FIRST || handle >= TPM2_PLATFORM_PERSISTENT) {
    throw Napi::RangeError::New(info.Env(), "handle must be an owner persistent handle (0x81000000-0x817fffff)");
  }
  return Run(info, [handle](Context& c) {
    ESYS_CONTEXT* e = c.E();
    c.Forget(handle);
    ESYS_TR tr = ESYS_TR_NONE;
    TSS2_RC rc = Esys_TR_FromTPMPublic(e, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
    if (IsHandleError(rc)) return Val::boolean(false);
    Check(rc, "Esys_TR_FromTPMPublic", "handle " + Hex32(handle));
    ESYS_TR none = ESYS_TR_NONE;
    rc = Esys_EvictControl(e, ESYS_TR_RH_OWNER, tr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, handle, &none);
    if (rc != TSS2_RC_SUCCESS) { Esys_TR_Close(e, &tr); Check(rc, "Esys_EvictControl", "evict " + Hex32(handle)); }
    // On success ESYS has released the evicted object's ESYS_TR itself.
    return Val::boolean(true);
  });
}

// quote(akHandle, nonce, selection) → { attest: TPMS_ATTEST bytes, signature: TPMT_SIGNATURE bytes }
Napi::Value Context::Quote(const Napi::CallbackInfo& info) {
  uint32_t handle = U32(info, 0, "akHandle");
  Bytes nonce = BytesArg(info, 1, "nonce", sizeof(TPMU_HA));
  TPML_PCR_SELECTION sel = SelectionArg(info, 2);
  return Run(info, [handle, nonce, sel](Context& c) {
    ESYS_TR ak = c.Persistent(handle);
    TPM2B_DATA qd;
    qd.size = static_cast<uint16_t>(nonce.size());
    if (!nonce.empty()) std::memcpy(qd.buffer, nonce.data(), nonce.size());
    TPMT_SIG_SCHEME scheme;
    std::memset(&scheme, 0, sizeof scheme);
    scheme.scheme = TPM2_ALG_NULL;  // the AK's own scheme (ECDSA/SHA-256)
    Out<TPM2B_ATTEST> quoted;
    Out<TPMT_SIGNATURE> sig;
    TSS2_RC rc = Esys_Quote(c.E(), ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qd, &scheme, &sel, quoted.ptr(), sig.ptr());
    if (rc != TSS2_RC_SUCCESS) { c.Forget(handle); Check(rc, "Esys_Quote", "AK " + Hex32(handle)); }
    uint8_t buf[sizeof(TPMT_SIGNATURE)];
    size_t off = 0;
    Check(Tss2_MU_TPMT_SIGNATURE_Marshal(sig.p, buf, sizeof buf, &off), "Tss2_MU_TPMT_SIGNATURE_Marshal");
    Val v = Val::object();
    v.set("attest", Val::bytes(quoted->attestationData, quoted->size));
    v.set("signature", Val::bytes(buf, off));
    return v;
  });
}

// activateCredential(akHandle, ekKind, credentialBlob, encryptedSecret) → certInfo (the secret)
Napi::Value Context::ActivateCredential(const Napi::CallbackInfo& info) {
  uint32_t handle = U32(info, 0, "akHandle");
  EkKind kind = EkKindArg(info, 1);
  Bytes blob = BytesArg(info, 2, "credentialBlob", sizeof(TPM2B_ID_OBJECT::credential));
  Bytes secret = BytesArg(info, 3, "encryptedSecret", sizeof(TPM2B_ENCRYPTED_SECRET::secret));
  return Run(info, [handle, kind, blob, secret](Context& c) {
    ESYS_CONTEXT* e = c.E();
    ESYS_TR ak = c.Persistent(handle);
    TPM2B_ID_OBJECT cb;
    cb.size = static_cast<uint16_t>(blob.size());
    if (!blob.empty()) std::memcpy(cb.credential, blob.data(), blob.size());
    TPM2B_ENCRYPTED_SECRET es;
    es.size = static_cast<uint16_t>(secret.size());
    if (!secret.empty()) std::memcpy(es.secret, secret.data(), secret.size());
    Ek ek(e);
    LoadEk(c, kind, ek);
    Flush session(e);
    StartEkSession(e, kind, session);
    Out<TPM2B_DIGEST> certInfo;
    TSS2_RC rc = Esys_ActivateCredential(e, ak, ek.use, ESYS_TR_PASSWORD, session.h, ESYS_TR_NONE, &cb, &es, certInfo.ptr());
    if (rc != TSS2_RC_SUCCESS) {
      if (IsHandleError(rc)) c.Forget(handle);
      Check(rc, "Esys_ActivateCredential");
    }
    return Val::bytes(certInfo->buffer, certInfo->size);
  });
}

Napi::Function Context::Init(Napi::Env env) {
  return DefineClass(env, "Context", {
    InstanceMethod<&Context::Open>("open"),
    InstanceMethod<&Context::Close>("close"),
    InstanceMethod<&Context::GetRandom>("getRandom"),
    InstanceMethod<&Context::ReadClock>("readClock"),
    InstanceMethod<&Context::Properties>("properties"),
    InstanceMethod<&Context::Handles>("handles"),
    InstanceMethod<&Context::PcrRead>("pcrRead"),
    InstanceMethod<&Context::PcrExtend>("pcrExtend"),
    InstanceMethod<&Context::EkPublic>("ekPublic"),
    InstanceMethod<&Context::NvRead>("nvRead"),
    InstanceMethod<&Context::ReadPublic>("readPublic"),
    InstanceMethod<&Context::EnsureAk>("ensureAk"),
    InstanceMethod<&Context::Evict>("evict"),
    InstanceMethod<&Context::Quote>("quote"),
    InstanceMethod<&Context::ActivateCredential>("activateCredential"),
  });
}

Napi::Value DecodeRc(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), Tss2_RC_Decode(U32(info, 0, "rc")));
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  // tpm2-tss logs every TPM error to stderr by default; errors reach JS as TpmError instead.
  // TSS2_LOG set by the user (e.g. TSS2_LOG=esys+debug) still wins.
  setenv("TSS2_LOG", "all+NONE", 0);
  exports.Set("Context", Context::Init(env));
  exports.Set("decodeRc", Napi::Function::New(env, DecodeRc));
  return exports;
}

}  // namespace

NODE_API_MODULE(quorate_tpm, InitModule)
