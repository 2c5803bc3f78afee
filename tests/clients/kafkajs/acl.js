// kafkajs under ACLs for tests/integration/test_security_acls.py:
//
//   node acl.js '{"brokers": [...], "ca": "<path>", "sasl": {...}, "op": "produce" | "consume",
//                 "topic": "t", "group": "g", "n": 3}'
//
// produce: sends n records (acks=-1); consume: reads n records from the beginning in a consumer
// group. Prints one JSON line: {"event": "done", "values": [...]} or
// {"event": "error", "type": "<Kafka error name>", "message": ...}.
'use strict'

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const spec = JSON.parse(process.argv[2])

// Kafka error names in kafkajs's debug log: some refusals (FindCoordinator's) are logged
// there and then reported as a kafkajs error of their own (KafkaJSGroupCoordinatorNotFound).
const logged = new Set()
const logCreator = () => ({ log }) => {
  const e = log && log.error
  if (e && typeof e === 'object' && e.type) logged.add(e.type)
}

function out (obj) {
  process.stdout.write(JSON.stringify({ ...obj, logged: [...logged] }) + '\n')
}

// The Kafka error name: kafkajs wraps the protocol error of a request it gave up retrying.
function failure (e) {
  let type = e.type || null
  for (let c = e.cause; !type && c; c = c.cause) type = c.type || null
  return { event: 'error', name: e.name, type, message: e.message }
}

async function produce (kafka) {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    const messages = []
    for (let i = 0; i < spec.n; i++) messages.push({ value: `kafkajs-${i}` })
    await producer.send({ topic: spec.topic, acks: -1, messages })
    out({ event: 'done', values: messages.map(m => m.value) })
  } finally {
    await producer.disconnect()
  }
}

async function consume (kafka) {
  const consumer = kafka.consumer({ groupId: spec.group, retry: { retries: 0 } })
  const values = []
  await consumer.connect()
  try {
    const finished = new Promise((resolve, reject) => {
      consumer.on(consumer.events.CRASH, ev => reject(ev.payload.error))
      setTimeout(() => reject(new Error('timed out')), 45000)
      consumer.subscribe({ topic: spec.topic, fromBeginning: true }).then(() => consumer.run({
        eachMessage: async ({ message }) => {
          values.push(message.value.toString())
          if (values.length >= spec.n) resolve()
        }
      })).catch(reject)
    })
    await finished
    out({ event: 'done', values })
  } finally {
    await consumer.disconnect()
  }
}

async function main () {
  const kafka = new Kafka({
    clientId: 'pykraft-kafkajs-acl',
    brokers: spec.brokers,
    ssl: { ca: [fs.readFileSync(spec.ca, 'utf-8')] },
    sasl: spec.sasl,
    logLevel: logLevel.DEBUG,
    logCreator,
    connectionTimeout: 5000,
    retry: { retries: 2, initialRetryTime: 200 }
  })
  try {
    await (spec.op === 'produce' ? produce(kafka) : consume(kafka))
  } catch (e) {
    out(failure(e))
  }
}

main().then(() => process.exit(0))
