// `npm run test:image`: the container image built and run as deployments run it (test/e2e/image/).
// The third part of `npm test` (package.json's ava section leaves these files out of the suite):
// it builds the image first (minutes), and its tests share one podman storage, so they run one
// file at a time.
export default {
  files: ['dist/test/e2e/image/**/*.test.js'],
  timeout: '10m',
  workerThreads: false,
  concurrency: 1,
  serial: true,
  nodeArguments: ['--enable-source-maps'],
}
