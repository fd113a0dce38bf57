/**
 * Every error code encfs raises, with what it means, the exit status a CLI ends with and the
 * HTTP status the attestation and key release API answers. Error classes take only these codes
 * (a misspelt or new code is a compile error until it is added here), and docs/errors.md is
 * generated from this table (npm run docs:errors).
 *
 * exit: 2 when the command line itself cannot be run, 1 for everything else (as the Go sidecars).
 * http: 403 the service refused, 502 it answered something unusable, 503 it is unavailable or
 * throttling, 504 it did not answer in time, 500 this sidecar failed; `upstream` follows the
 * service's own answer (4xx refused 403, 408 504, 429 503, 5xx 502). See docs/api-errors.md.
 */
export type ApiErrorStatus = 403 | 500 | 502 | 503 | 504

export interface ErrorCodeInfo {
  /** One line: what went wrong, for docs/errors.md. */
  meaning: string
  exit: 1 | 2
  http: ApiErrorStatus | 'upstream'
}

const usage = (meaning: string) => ({ meaning, exit: 2, http: 500 }) as const
const failure = (meaning: string, http: ErrorCodeInfo['http'] = 500) => ({ meaning, exit: 1, http }) as const
const badAnswer = (meaning: string) => failure(meaning, 502)
const unavailable = (meaning: string) => failure(meaning, 503)
const answered = (meaning: string) => failure(meaning, 'upstream')

export const ERROR_CODES = {
  // The command line
  CLI_USAGE: usage('the command line cannot be run as given: unknown flag, missing argument or bad value (see --help)'),
  // Go's sidecars end with logrus.Fatalf (exit 1) on a bad level, so encfs does too.
  LOG_LEVEL_INVALID: failure('-loglevel (or LogLevel) is not a log level'),
  LOG_FORMAT_INVALID: usage('-logformat is neither json nor text'),
  API_PORT_INVALID: usage('-port (or env Port) is not a port number'),
  KEY_MISSING: failure('the command needs a key: --key-file or --key-hex'),

  // Configuration
  CONFIG_MISSING: failure('no configuration: neither -base64 nor EncfsSideCarArgs is set'),
  CONFIG_BASE64: failure('EncfsSideCarArgs (or -base64) is empty or not base64'),
  CONFIG_JSON: failure('the configuration decodes from base64 but is not JSON'),
  CONFIG_INVALID: failure('the configuration has invalid members (each named by its JSON path)'),

  // Programs encfs runs
  COMMAND_MISSING: failure('a program encfs runs (cryptsetup, losetup, mount, openssl...) is not installed'),
  COMMAND_FAILED: failure('a program encfs runs failed or timed out (its last lines of output are in the message)'),

  // Storage
  STORAGE_BAD_URL: failure('azure_url (or an image path) is neither a blob URL, a file:// URL nor an absolute path'),
  STORAGE_NOT_FOUND: failure('the blob or image file does not exist'),
  STORAGE_ACCESS_DENIED: failure("storage refused access: the SAS (permissions, expiry) or the identity's role"),
  STORAGE_IDENTITY: failure('no token for blob storage from the managed or workload identity'),
  STORAGE_UNREACHABLE: failure('the storage account cannot be reached'),
  STORAGE_TIMEOUT: failure('storage did not answer (or kept refusing) through the retries'),
  STORAGE_READ_FAILED: failure('storage answered a read with an error'),
  STORAGE_SHORT_READ: failure('the image ended before the bytes asked for (truncated?)'),
  STORAGE_ABORTED: failure('a storage request was aborted (remotefs is stopping)'),
  STORAGE_BLOB_CHANGED: failure('the blob was replaced while mounted (its ETag changed)'),
  STORAGE_NOT_A_FILE: failure('the image path is a FIFO, socket, directory or other non-file'),
  STORAGE_LEASED: failure("another writer holds the blob's lease (another read-write remotefs?)"),
  STORAGE_NEEDS_PAGE_BLOB: failure('read_write needs a page blob, and the image is a block or append blob'),
  STORAGE_WRITE_NEEDS_CREDENTIAL: failure('read_write needs a credential that may write: a SAS with sp=rw or an identity'),
  STORAGE_WRITE_FAILED: failure('a write-back to storage failed within its bound; the data stays in memory for the next fsync'),
  STORAGE_WRITE_DROPPED: failure('at stop, written data could not reach storage within the deadline and was discarded (listed in the message)'),
  STORAGE_LEASE_LOST: failure('remotefs no longer holds the write lease on the blob: reads and writes that need storage fail'),
  STORAGE_BAD_ANSWER: failure(
    'storage answered something that makes no sense: bytes other than those asked for (another range, a whole blob, more bytes, a stray answer: the connection is dropped and the read retried), a body cut short, another ETag',
  ),

  // LUKS
  LUKS_TOO_SMALL: failure('the image is too small to hold a LUKS header'),
  LUKS_NOT_LUKS: failure('the image has no LUKS header'),
  LUKS_HEADER_CORRUPT: failure('no copy of the LUKS header is valid (damaged or tampered with)'),
  LUKS_VERSION_UNSUPPORTED: failure('a LUKS version other than 1 and 2'),
  LUKS1_UNSUPPORTED: failure('a LUKS1 image given to a reader of LUKS2 only'),
  LUKS_METADATA_INVALID: failure('the LUKS2 JSON metadata is invalid or names what encfs cannot use'),
  LUKS_REQUIREMENTS: failure('the LUKS2 header has unmet requirements (a reencryption in progress?)'),
  LUKS_SEGMENT_UNSUPPORTED: failure('the LUKS2 header has a segment layout encfs does not open'),
  LUKS_SECTOR_SIZE_UNSUPPORTED: failure('a sector size other than 512, 1024, 2048 or 4096'),
  LUKS_CIPHER_UNSUPPORTED: failure('a cipher or key size encfs does not decrypt'),
  LUKS_INTEGRITY_UNSUPPORTED: failure('authenticated encryption (dm-integrity), which only the kernel path opens'),
  LUKS_USERSPACE_UNSUPPORTED: failure("a LUKS1 image encfs's own decryption cannot open (the kernel path can)"),
  LUKS_DATA_SIZE_MISMATCH: failure('the data segment does not fit the image (truncated upload?)'),
  LUKS_NO_USABLE_KEYSLOT: failure('no keyslot encfs can use is bound to the data'),
  LUKS_KDF_UNSUPPORTED: failure('a keyslot names a KDF, hash or count encfs cannot compute'),
  LUKS_KDF_MEMORY: failure("a keyslot's Argon2 needs more memory than allowed"),
  LUKS_KDF_BUDGET: failure('the header asks for more key-derivation work than one unlock may spend'),
  LUKS_KDF_FAILED: failure('the key derivation itself failed'),
  LUKS_KDF_ABORTED: failure('the key derivation was stopped (remotefs is stopping)'),
  LUKS_WRONG_KEY: failure('the key opens no keyslot of the image'),

  // dm-verity
  VERITY_NO_SUPERBLOCK: failure('no dm-verity superblock where the hash tree should start'),
  VERITY_BAD_SUPERBLOCK: failure('the dm-verity superblock holds values no tree can have'),
  VERITY_UNSUPPORTED: failure('the hash tree uses a hash, block size or format encfs does not verify'),
  VERITY_TRUNCATED: failure('the hash tree or the image is shorter than the superblock says'),
  VERITY_SUPERBLOCK_MISMATCH: failure('the superblock does not describe the tree the root hash pins'),
  VERITY_DATA_SIZE: failure('the data the superblock covers is not the whole image (or not verity.data_blocks)'),
  VERITY_ROOT_MISMATCH: failure('the hash tree does not match verity.root_hash'),
  VERITY_MISMATCH: failure('data read from the image does not match the hash tree'),
  VERITY_IMAGE_MODIFIED: failure('encfs verify found data blocks that do not match the root hash'),
  VERITY_BAD_ROOT_HASH: failure('a root hash that is not 64 hex digits (sha256)'),
  VERITY_BAD_OFFSET: failure('verity.hash_offset is not a multiple of the block size'),
  VERITY_BAD_SALT: failure('a dm-verity salt longer than a superblock holds'),
  VERITY_BAD_SIZE: failure('the image is not whole 4096-byte blocks'),

  // Mounting
  FUSE_UNAVAILABLE: failure('/dev/fuse is missing'),
  FUSE_MOUNT_FAILED: failure('the FUSE file server could not be mounted'),
  FUSE_UNMOUNT_FAILED: failure('the FUSE file server could not be unmounted'),
  FUSE_BAD_NAME: failure('a served file name FUSE cannot carry'),
  FUSE_BACKEND_UNAVAILABLE: failure('the FUSE backend asked for (--fuse / EncfsFuse) cannot be used here'),
  FUSE3_ADDON_MISSING: failure('the libfuse3 data plane addon (native/fuse3) is not built or does not load'),
  HTTP_ADDON_MISSING: failure('the libcurl blob fetcher addon (native/http) is not built or does not load'),
  HTTP_CLIENT_UNAVAILABLE: failure('the blob HTTP client asked for (--http / EncfsHttp) cannot be used here'),
  UNLOCK_KERNEL_UNAVAILABLE: failure('--unlock kernel without dm-crypt here'),
  MOUNTER_LOOP_UNAVAILABLE: failure('--mounter loop without loop devices here'),
  MOUNTER_FUSE2FS_UNAVAILABLE: failure('--mounter fuse2fs without fuse2fs installed'),
  MOUNTER_UNAVAILABLE: failure('neither loop devices nor fuse2fs: ext4 cannot be mounted'),
  MOUNT_POINT_PARENT_NOT_DIRECTORY: failure("the mount point's parent (or one above it) exists and is not a directory"),
  MOUNT_POINT_EXISTS: failure("the mount point exists and is not remotefs's symlink"),
  MOUNT_DIR_FAILED: failure('the .filesystem-N directory cannot be created'),
  MOUNT_DIR_FOREIGN: failure('something remotefs did not mount sits at .filesystem-N'),
  MOUNT_SOURCE_READ_ONLY: failure("read_write is set, but the image's source was opened without write support"),
  RUNTIME_DIR_BUSY: failure('another remotefs uses the same runtime directory'),
  LOOP_ATTACH_FAILED: failure('no loop device could be attached to the FUSE file'),
  CRYPTSETUP_OPEN_FAILED: failure('cryptsetup open failed for another reason than the key'),
  VERITYSETUP_OPEN_FAILED: failure('veritysetup open failed'),
  EXT4_MOUNT_FAILED: failure('the decrypted image does not mount as ext4'),
  FUSE2FS_FAILED: failure('fuse2fs did not mount the decrypted image'),
  UNMOUNT_FAILED: failure('some cleanup steps of an unmount failed'),
  MOUNT_ABORTED: failure('the filesystem was being unmounted, or remotefs stopped, while a step was running'),
  STOP_FAILED: failure('stopping remotefs left filesystems that could not be unmounted'),

  // Keys
  KEY_RAW_INVALID: failure('raw_key is not the hex of the key file bytes'),
  KEY_RELEASE_UNAVAILABLE: failure('a released key was asked of a provider that takes raw keys only'),
  KEY_RELEASED_SIZE: badAnswer('a released oct key is not 32 bytes'),
  KEY_RELEASED_TYPE: badAnswer('a released key of a type that cannot open a filesystem (only oct and RSA can)'),

  // Attestation
  ATTEST_MODE_INVALID: failure('an unknown --attestation mode'),
  ATTEST_NO_PROVIDER: failure('no SEV-SNP report source here (/dev/sev-guest, /dev/sev or configfs-tsm)'),
  ATTEST_ADDON_MISSING: failure('the native addon that asks the SNP device for reports is not built'),
  NATIVE_ADDON_MISSING: failure('the native addon is not built (npm run setup)'),
  ATTEST_DEVICE_MISSING: failure('the SEV-SNP device or configfs-tsm entry does not exist'),
  ATTEST_DEVICE_PERMISSION: failure('no permission to open the SEV-SNP device'),
  ATTEST_DEVICE_FAILED: failure('the SEV-SNP device refused the report request'),
  ATTEST_FIRMWARE_ERROR: failure('the SEV firmware answered an error status'),
  ATTEST_SIMULATOR_FAILED: failure('the simulated SNP chip could not be set up'),
  ATTEST_REPORT_SIZE: failure('a report of the wrong size'),
  ATTEST_REPORT_VERSION: failure('a report version that is not an SNP attestation report'),
  ATTEST_REPORT_SIGNATURE: failure('a report signature that is malformed or does not verify'),
  ATTEST_REPORT_DATA_INVALID: failure('report data that is not hex of at most 64 bytes'),
  ATTEST_REPORT_DATA_MISMATCH: failure('the report binds other data than expected'),
  ATTEST_HOST_DATA_MISMATCH: failure("the report's host_data is not the expected policy digest"),
  ATTEST_BASE64: failure('a base64 attestation input (host AMD certificate) is not standard base64'),
  ATTEST_THIM_JSON: badAnswer('the THIM certificate JSON is not JSON'),
  ATTEST_TCBM_INVALID: badAnswer('a TCBM that is not a 64-bit hex value'),
  ATTEST_CERT_FETCH: badAnswer('the VCEK chain could not be fetched from AMD KDS, AzCache or THIM'),
  ATTEST_CHAIN_INVALID: badAnswer('the VCEK chain is not a VCEK, ASK and ARK in PEM'),
  ATTEST_CHAIN_EXPIRED: badAnswer('a certificate of the VCEK chain is not valid now'),
  ATTEST_CHAIN_UNTRUSTED: badAnswer('the VCEK chain does not end at a trusted AMD root'),
  ATTEST_VCEK_INVALID: badAnswer('the VCEK has no readable TCB extensions'),
  ATTEST_TCB_MISMATCH: badAnswer("the report's TCB differs from the TCB of the VCEK chain"),
  ATTEST_NO_CERTIFICATES: unavailable('no VCEK chain for this chip and TCB from any source'),
  ATTEST_HCL_INVALID: failure('an HCL report (Azure confidential VM) that is malformed, not SEV-SNP, or of an unknown hash type'),
  ATTEST_HCL_BINDING: failure('an HCL report whose REPORT_DATA does not carry the hash of its variable data (altered keys or user data)'),
  ATTEST_VTPM_UNSUPPORTED: failure(
    "an SNP report for runtime data (/attest/maa, /attest/combined) asked of a confidential VM's vTPM, whose report binds the HCL variable data instead",
  ),
  ATTEST_HCL_STALE: failure('the paravisor did not refresh the HCL report with the user data written to NV index 0x01400002 in time'),

  // The vTPM of an Azure confidential VM
  TPM_ADDON_MISSING: failure('the TPM addon (tpm2-tss) is not built or does not load (npm run setup; libtss2-dev to build)'),
  TPM_UNAVAILABLE: failure('the TPM named by --tpm-tcti cannot be opened (/dev/tpmrm0 missing or not mapped, swtpm not running)'),
  TPM_COMMAND_FAILED: failure('the TPM answered a command with an error (its response code and meaning are in the message)'),
  TPM_NOT_CVM: failure('the TPM holds no HCL report or attestation key: this is not an Azure confidential VM'),
  TPM_DATA_INVALID: failure('a TPM structure (public area, quote, certify info) that cannot be read'),

  // MAA
  MAA_ATTEST_FAILED: answered("MAA refused the evidence (the message carries MAA's reason)"),
  MAA_UNAVAILABLE: answered('MAA answered 408, 429 or 5xx through all retries'),
  MAA_BAD_ANSWER: badAnswer('MAA answered without a token'),
  MAA_SIGNING_KEYS: badAnswer("MAA's signing keys (/.well-known/openid-configuration, then its jwks_uri) could not be read"),
  MAA_TOKEN_MALFORMED: badAnswer('the MAA token is not a compact JWT with a JSON header and claims'),
  MAA_TOKEN_ALGORITHM: badAnswer('the MAA token is not signed with RS256 (alg none, HS256...)'),
  MAA_TOKEN_JKU: badAnswer("the MAA token names signing keys (jku) on another host than the MAA instance's"),
  MAA_TOKEN_KEY_UNKNOWN: badAnswer("the MAA token's kid is not among the instance's signing keys, even after fetching them again"),
  MAA_TOKEN_SIGNATURE: badAnswer("the MAA token's signature does not verify with the instance's key (tampered with, or signed by another key)"),
  MAA_TOKEN_ISSUER: badAnswer('the MAA token was issued by another instance than the one asked'),
  MAA_TOKEN_EXPIRED: badAnswer('the MAA token has expired (exp), beyond the allowed clock skew'),
  MAA_TOKEN_NOT_YET_VALID: badAnswer('the MAA token is not valid yet (nbf or iat in the future beyond the clock skew)'),
  MAA_TOKEN_RUNTIME_DATA: badAnswer("the MAA token's x-ms-runtime is not the runtime data that was sent"),
  MAA_TOKEN_REPORT_DATA: badAnswer("the MAA token's REPORT_DATA claim does not hold the hash of the runtime data that was sent"),
  MAA_ADMIN_IDENTITY: unavailable('no token for https://attest.azure.net from the managed or workload identity'),
  MAA_POLICY_REFUSED: answered('MAA refused the policy or signer operation (syntax error, unknown signer, permission)'),
  MAA_POLICY_ANSWER: badAnswer('MAA answered a policy operation with something other than the expected token'),
  MAA_POLICY_HASH: badAnswer('the x-ms-policy-token-hash MAA returned is not the hash of the policy JWS that was sent'),
  MAA_POLICY_SIGNER: failure('the policy signing key and certificate cannot be read or do not match'),
  MAA_POLICY_FILE: failure('the attestation policy or certificate file cannot be read'),

  // Secure key release
  SKR_IDENTITY: unavailable('no token for the vault from the managed or workload identity'),
  SKR_VAULT_UNTRUSTED: failure('the vault endpoint is not a Key Vault or Managed HSM of the Azure clouds nor in EncfsVaultHosts: no token is sent to it', 403),
  SKR_VAULT_HOSTS_INVALID: failure('env EncfsVaultHosts has an entry that is not host[:port][=<vault suffix>]'),
  SKR_RELEASE_REFUSED: answered('the vault refused the release (policy not satisfied, no permission, bad token, no such key)'),
  SKR_RELEASE_UNAVAILABLE: answered('the vault answered 408, 429 or 5xx through all retries'),
  SKR_JWS_INVALID: badAnswer('the release answer is not the expected JWS'),
  SKR_JWS_SIGNATURE: badAnswer('the release JWS signature does not verify'),
  SKR_CHAIN_INVALID: badAnswer('the JWS certificate chain is empty or malformed'),
  SKR_CHAIN_EXPIRED: badAnswer('a certificate of the JWS chain is not valid now'),
  SKR_CHAIN_UNTRUSTED: badAnswer('the JWS chain does not lead to a trusted root'),
  SKR_HOST_MISMATCH: badAnswer("the JWS signing certificate is not for the vault's host"),
  SKR_TRUST_STORE: failure('the trusted roots for the JWS chain cannot be read'),
  SKR_UNWRAP_ALGORITHM: badAnswer('the released key is wrapped with an algorithm encfs does not unwrap'),
  SKR_UNWRAP_FAILED: badAnswer('the released key does not unwrap with the ephemeral key'),
  SKR_KEY_TYPE: badAnswer("the released key's type or key_ops cannot be used"),
  SKR_DERIVE_FAILED: failure('an RSA key derivation with a bad key or salt'),
  SKR_IMPORT_FAILED: failure('the vault refused to import the key'),
  SKR_KEY_READ_FAILED: answered('the vault refused to read the key and its release policy (no such key, or no get permission)'),
  SKR_POLICY_INVALID: failure("the key's release policy is not base64 of JSON"),
  SKR_POLICY_UNSATISFIED: failure("encfs release --explain: the key's release policy does not allow release to this attestation"),

  // HTTP
  HTTP_UNREACHABLE: unavailable('a service (MAA, the vault, a certificate source) cannot be reached'),
  HTTP_TIMEOUT: failure('a service did not answer in time', 504),
  HTTP_TRUST_STORE: failure('NODE_EXTRA_CA_CERTS names a file that cannot be read'),
  HTTP_HEADER_INVALID: failure('a request header would carry CR, LF or NUL (or its name is not a token): refused before sending, as it would inject headers or requests'),
  HTTP_URL_REFUSED: failure('a request URL is not http or https, or holds spaces or control characters: refused before sending'),

  // Services
  API_LISTEN_FAILED: failure('the HTTP API cannot listen on its port'),
  GRPC_LISTEN_FAILED: failure('the keyprovider gRPC service cannot listen on its port'),
  KEYPROVIDER_INPUT_INVALID: failure('a keyprovider request with invalid JSON, parameters or annotation'),
  KEYPROVIDER_KEY_INFO: failure("the wrapping key's -info.json or public key cannot be used"),
  KEYPROVIDER_KEY_NOT_RSA: failure('UnWrapKey needs an RSA key and the vault released another type'),
  KEYPROVIDER_WRAP_FAILED: failure('the payload cannot be wrapped with the given key'),
  KEYPROVIDER_UNWRAP_FAILED: failure('the wrapped data does not unwrap with the released key'),
  KEYPROVIDER_STEP_FAILED: failure('a step of a keyprovider request failed with an unexpected error'),
  KEYPROVIDER_INFILE: failure('encfs wrap cannot read the file to wrap (missing, not a regular file, or too large)'),
  KEYPROVIDER_OUTFILE: failure('encfs wrap cannot write the annotation to -outfile (a directory, no permission)'),

  // Tools
  IMPORT_CONFIG: failure('importkeyconfig.json is unreadable or invalid'),
  IMPORT_KEY_HEX: failure('-kh is neither a file nor hex'),
  IMPORT_KEY_PEM: failure('-kp is not an RSA private key in PEM'),
  IMPORT_KEY_EXISTS: failure('the private key file to write exists already'),
  PACK_SOURCE: failure('encfs pack --from is not a directory'),
  PACK_SIZE: failure('encfs pack --size is not a size'),
  PACK_KEY: failure('encfs pack --key-file cannot be read'),
  PACK_MKFS_FAILED: failure('mkfs.ext4 failed making the image (too small?)'),
  POLICY_MISSING: failure('no policy given to encfs policy-digest'),
  POLICY_BOTH: failure('the policy given both with -p and -f'),
  POLICY_FILE: failure('the policy file cannot be read'),
  POLICY_BASE64: failure('the policy is not standard base64 with padding'),
  PKI_FAILED: failure("the emulators' certificates could not be made"),
  AZURITE_MISSING: failure('Azurite (a development dependency) is not installed'),
  AZURITE_FAILED: failure('Azurite did not start'),
  DEMO_NOT_ROOT: failure('the demo must run as root'),
  DEMO_NO_FUSE: failure('/dev/fuse is missing for the demo'),
  DEMO_MISSING_TOOL: failure('a program the demo needs is missing'),
  DEMO_REMOTEFS_FAILED: failure('remotefs exited during the demo'),
  DEMO_STEP_FAILED: failure('a step of the demo did not do what it shows (a refusal that was not refused)'),
} as const satisfies Record<string, ErrorCodeInfo>

export type ErrorCode = keyof typeof ERROR_CODES

/** Codes of a command line that cannot be run as given (exit status 2). */
export type UsageCode = { [K in ErrorCode]: (typeof ERROR_CODES)[K]['exit'] extends 2 ? K : never }[ErrorCode]

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

export function isUsageCode(code: ErrorCode): code is UsageCode {
  return ERROR_CODES[code].exit === 2
}
