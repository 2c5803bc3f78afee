// Compression codecs for kafkajs, all pure JavaScript or wasm (no native build): gzip is built
// into kafkajs; snappy is kafkajs-snappy (snappyjs, raw snappy out, raw or Xerial in); lz4 and
// zstd are wrapped here in kafkajs's codec shape, a function returning { compress(encoder),
// decompress(buffer) } that work on Buffers (kafkajs/src/protocol/message/compression/).
'use strict'

const { CompressionTypes, CompressionCodecs } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4js = require('lz4js')
const { ZstdCodec } = require('zstd-codec')

// The LZ4 frame format (magic 04 22 4D 18), which Kafka uses since magic 1.
const Lz4Codec = () => ({
  async compress (encoder) {
    return Buffer.from(lz4js.compress(encoder.buffer))
  },
  async decompress (buffer) {
    return Buffer.from(lz4js.decompress(buffer))
  }
})

// zstd-codec is emscripten-built zstd; its module loads asynchronously.
const zstdReady = new Promise(resolve => ZstdCodec.run(resolve))

async function registerCodecs () {
  const zstd = await zstdReady
  const simple = new zstd.Simple()
  const streaming = new zstd.Streaming()
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
  CompressionCodecs[CompressionTypes.LZ4] = Lz4Codec
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress (encoder) {
      return Buffer.from(simple.compress(encoder.buffer, 3))
    },
    // The streaming decoder also reads frames without a content size (librdkafka's, Java's).
    async decompress (buffer) {
      const out = streaming.decompress(buffer)
      if (out === null) throw new Error('zstd: undecodable frame')
      return Buffer.from(out)
    }
  })
}

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

module.exports = { registerCodecs, CODECS }
