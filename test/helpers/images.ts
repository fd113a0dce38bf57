// The image maker lives in src/demo (the demo uses it too); tests use it from here.
export { makeEncryptedImage, randomKey, type TestImage, type ImageOptions } from '../../src/demo/test-image.js'
