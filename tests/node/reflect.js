// A client from outside the project: it knows no .proto file. It discovers Odradek's
// services by gRPC server reflection, then calls Metadata and ListTopics with the
// descriptors it was sent, and prints what it learned as JSON.
'use strict';

const grpc = require('@grpc/grpc-js');
const { Client: ReflectionClient } = require('grpc-reflection-js');

function unaryMethod(root, serviceName, methodName) {
  const service = root.lookupService(serviceName);
  const method = service.methods[methodName];
  const requestType = root.lookupType(method.requestType);
  const responseType = root.lookupType(method.responseType);
  return {
    path: `/${serviceName}/${methodName}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (obj) => Buffer.from(requestType.encode(requestType.fromObject(obj)).finish()),
    requestDeserialize: (buf) => requestType.decode(buf),
    responseSerialize: (obj) => Buffer.from(responseType.encode(obj).finish()),
    responseDeserialize: (buf) =>
      responseType.toObject(responseType.decode(buf), { longs: String, defaults: true }),
  };
}

function call(client, name, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    client[name](request, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

async function main() {
  const address = process.argv[2];
  const credentials = grpc.credentials.createInsecure();
  const reflection = new ReflectionClient(address, credentials);
  const services = await reflection.listServices();
  const root = await reflection.fileContainingSymbol('odradek.v1.Broker');
  const Broker = grpc.makeGenericClientConstructor(
    { Metadata: unaryMethod(root, 'odradek.v1.Broker', 'Metadata') }, 'Broker');
  const Admin = grpc.makeGenericClientConstructor(
    { ListTopics: unaryMethod(root, 'odradek.v1.Admin', 'ListTopics') }, 'Admin');
  const broker = new Broker(address, credentials);
  const admin = new Admin(address, credentials);
  const metadata = await call(broker, 'Metadata', {});
  const topics = await call(admin, 'ListTopics', {});
  console.log(JSON.stringify({ services, metadata, topics }));
  broker.close();
  admin.close();
  reflection.grpcClient.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
