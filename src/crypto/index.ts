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
