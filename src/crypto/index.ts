export { sealAesGcm, openAesGcm, AES_KEY_BYTES, GCM_IV_BYTES, GCM_TAG_BYTES } from "./aead.js";
export { constantTimeEqual } from "./compare.js";
export { fromBase64, fromBase64Url, fromHex, toBase64Url } from "./encoding.js";
export {
  Keyring,
  DataKey,
  keyPeriod,
  sealedKeyId,
  type Binding,
  type DataKeyPurpose,
  type SigningKey,
  type SigningPurpose,
} from "./keyring.js";
export { parseMasterKey, masterKeyFromBytes, generateMasterKeyText, type MasterKey } from "./master-key.js";
export { resolveMasterKeys, type MasterKeys, type MasterKeyOrigin } from "./master-key-source.js";
export {
  decryptCompat,
  decryptEnvelope,
  encodeEnvelope,
  encryptCompat,
  encryptWithKey,
  encryptWithPassword,
  envelopeToBinary,
  envelopeToJson,
  openCompatBlob,
  parseEnvelope,
  sealCompatBlob,
  type CompatEnvelope,
  type DecryptSecret,
  type Envelope,
  type EnvelopeFormat,
} from "./envelope.js";
export {
  KDF_LIMITS,
  PBKDF2_DEFAULT,
  SCRYPT_DEFAULT,
  checkKdfParams,
  derivePasswordKey,
  hkdfSha256,
  hmacSha256,
  pbkdf2Sha256,
  verifyHmacSha256,
  type KdfLimits,
  type KdfParams,
} from "./kdf.js";
export {
  generateEd25519KeyPair,
  generateRsaKeyPair,
  hybridDecrypt,
  hybridEncrypt,
  oaepCapacity,
  privateKeyFrom,
  publicKeyFrom,
  rsaOaepDecrypt,
  rsaOaepEncrypt,
  signEd25519,
  verifyEd25519,
  type PemKeyPair,
  type RsaBits,
} from "./asymmetric.js";
