# The server as the official CodeDeploy agent meets it, from the Ruby stack that agent runs on:
# Net::HTTP over TLS with VERIFY_PEER, requests signed by aws-sigv4 (the signer aws-sdk-core
# uses), OpenSSL's PKCS#7 verification. Written for OpenDeploy's tests after the agent's
# behaviour (agent-behaviour.md §1.3 and the agent's start-up and spec checks); no agent code.
#
#   ruby official_agent_wire.rb ENDPOINT TLS_CA SIGNER_CA SIGNING_NAME TARGET_PREFIX \
#        ACCESS_KEY SECRET_KEY HOST_IDENTIFIER REGION BUNDLE_OUT
#
# Prints one JSON object of what it saw; the Python test judges it.
require 'aws-sdk-s3'
require 'aws-sigv4'
require 'json'
require 'net/http'
require 'openssl'

endpoint, tls_ca, signer_ca, signing_name, target_prefix, access, secret, host_id, region, bundle_out = ARGV
seen = {}

def amazon_name(region, common_name)
  if region.start_with?('cn-')
    "/C=CN/ST=Beijing/L=Beijing/O=Amazon Connect Technology Services (Beijing) Co., Ltd./CN=#{common_name}.amazonaws.com.cn"
  else
    "/C=US/ST=Washington/L=Seattle/O=Amazon.com, Inc./CN=#{common_name}.amazonaws.com"
  end
end

uri = URI(endpoint)

# Start-up: a GET / with VERIFY_PEER, the leaf certificate's name pinned to the endpoint's.
probe = Net::HTTP.new(uri.host, uri.port)
probe.use_ssl = true
probe.verify_mode = OpenSSL::SSL::VERIFY_PEER
probe.ca_file = tls_ca
leaf = nil
probe.verify_callback = lambda do |ok, store|
  next false unless ok
  leaf = store.chain[0].subject.to_s
  leaf == amazon_name(region, "codedeploy-commands.#{region}")
end
begin
  probe.get('/')
  seen['tls_check'] = 'passed'
rescue OpenSSL::SSL::SSLError => e
  seen['tls_check'] = "failed: #{e.message}"
end
seen['tls_leaf_subject'] = leaf

http = Net::HTTP.new(uri.host, uri.port)
http.use_ssl = true
http.verify_mode = OpenSSL::SSL::VERIFY_PEER
http.ca_file = tls_ca
http.read_timeout = 80
http.start

call = lambda do |op, params, secret_key = secret|
  signer = Aws::Sigv4::Signer.new(service: signing_name, region: region,
                                  access_key_id: access, secret_access_key: secret_key)
  body = params.to_json
  headers = {
    'content-type' => 'application/x-amz-json-1.1',
    'x-amz-target' => "#{target_prefix}.#{op}",
    'x-amz-codedeploy-agent-version' => 'OFFICIAL_1.2.1_ruby_wire_test',
    'user-agent' => "aws-sdk-ruby3/#{Gem.loaded_specs['aws-sigv4']&.version} ruby/#{RUBY_VERSION}",
  }
  signed = signer.sign_request(http_method: 'POST', url: "#{endpoint}/", headers: headers, body: body)
  request = Net::HTTP::Post.new('/')
  headers.merge(signed.headers).each { |name, value| request[name] = value }
  request.body = body
  response = http.request(request)
  data = response.body.to_s.empty? ? {} : JSON.parse(response.body)
  [response.code.to_i, data]
end

command = nil
5.times do
  status, data = call.call('PollHostCommand', 'HostIdentifier' => host_id)
  raise "PollHostCommand: HTTP #{status} #{data}" unless status == 200
  command = data['HostCommand']
  break if command
end
raise 'no command after five polls' unless command
seen['command'] = command['CommandName']

status, spec = call.call('GetDeploymentSpecification',
                         'DeploymentExecutionId' => command['DeploymentExecutionId'],
                         'HostIdentifier' => host_id)
raise "GetDeploymentSpecification: HTTP #{status} #{spec}" unless status == 200
envelope = spec['DeploymentSpecification']['GenericEnvelope']
seen['deployment_system'] = spec['DeploymentSystem']
seen['spec_format'] = envelope['Format']
# The strict agents' spec check: NOCHAIN against their CA file, one certificate, its name pinned.
store = OpenSSL::X509::Store.new
store.add_file(signer_ca)
pkcs7 = OpenSSL::PKCS7.new(envelope['Payload'])
seen['spec_verified'] = pkcs7.verify([], store, nil, OpenSSL::PKCS7::NOCHAIN)
seen['spec_certificates'] = pkcs7.certificates.size
seen['spec_signer_pinned'] = pkcs7.certificates[0].subject.to_s == amazon_name(region, "codedeploy-signer-#{region}")
seen['spec'] = JSON.parse(pkcs7.data)
# Against the CA file the agent ships (any other anchor), the same check fails.
other_key = OpenSSL::PKey::EC.generate('prime256v1')
other = OpenSSL::X509::Certificate.new
other.version = 2
other.serial = 1
other.subject = other.issuer = OpenSSL::X509::Name.parse(amazon_name(region, "codedeploy-signer-#{region}"))
other.public_key = other_key
other.not_before = Time.now - 60
other.not_after = Time.now + 3600
other.sign(other_key, OpenSSL::Digest.new('SHA256'))
stranger = OpenSSL::X509::Store.new
stranger.add_cert(other)
seen['spec_verified_by_stranger'] = OpenSSL::PKCS7.new(envelope['Payload']).verify([], stranger, nil, OpenSSL::PKCS7::NOCHAIN)

# DownloadBundle as the agent does it: aws-sdk-s3 with the endpoint override, SigV4, the object
# streamed to a file, the ETag compared without its quotes.
ENV['AWS_ACCESS_KEY'] = access
ENV['AWS_SECRET_KEY'] = secret
s3 = Aws::S3::Client.new(region: region, endpoint: URI(endpoint), signature_version: 'v4',
                         ssl_ca_bundle: tls_ca)
revision = seen['spec']['Revision']['S3Revision']
File.open(bundle_out, 'wb') do |file|
  object = s3.get_object({ bucket: revision['Bucket'], key: revision['Key'] }, target: file)
  seen['bundle_etag_matches'] = revision['ETag'].nil? || revision['ETag'].delete('"') == object.etag.delete('"')
end

status, ack = call.call('PutHostCommandAcknowledgement',
                        'HostCommandIdentifier' => command['HostCommandIdentifier'],
                        'Diagnostics' => { 'Format' => 'JSON', 'Payload' => { 'IsCommandNoop' => false }.to_json })
seen['ack'] = [status, ack['CommandStatus']]
status, _ = call.call('PutHostCommandComplete',
                      'HostCommandIdentifier' => command['HostCommandIdentifier'],
                      'CommandStatus' => 'Succeeded',
                      'Diagnostics' => { 'Format' => 'JSON', 'Payload' => { 'error_code' => 0, 'script_name' => '', 'message' => 'Succeeded', 'log' => '' }.to_json })
seen['complete'] = status

status, data = call.call('PollHostCommand', 'HostIdentifier' => 'arn:aws:iam::000000000000:user/someone-else')
seen['foreign_host'] = [status, data['__type']]
status, data = call.call('PollHostCommand', { 'HostIdentifier' => host_id }, "#{secret}x")
seen['wrong_secret'] = [status, data['__type']]
puts JSON.generate(seen)
