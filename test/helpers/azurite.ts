// The Azurite launcher lives in src/demo (the demo uses it too); tests use it from here.
export { startAzurite, uploadFile, blobSas, freePort, type Azurite, type UploadOptions } from '../../src/demo/azurite.js'
