{{/* Names ------------------------------------------------------------------------------------ */}}
{{- define "fleetpulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fleetpulse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", kept within the 63-character name limit. */}}
{{- define "fleetpulse.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "fleetpulse.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: include "fleetpulse.labels" (list . "agent") */}}
{{- define "fleetpulse.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "fleetpulse.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "fleetpulse.labels" -}}
{{- $root := index . 0 -}}
{{ include "fleetpulse.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: fleetpulse
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Images ----------------------------------------------------------------------------------- */}}
{{- define "fleetpulse.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $tag := default $root.Chart.AppVersion $image.tag -}}
{{- if $root.Values.image.registry -}}
{{- printf "%s/%s:%s" $root.Values.image.registry $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "fleetpulse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "fleetpulse.fullname" . -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* Fixed paths inside the containers --------------------------------------------------------- */}}
{{- define "fleetpulse.agent.hostRoot" -}}/host{{- end -}}
{{- define "fleetpulse.agent.configPath" -}}/etc/fleetpulse/agent.yaml{{- end -}}
{{- define "fleetpulse.agent.tokenDir" -}}/etc/fleetpulse/otlp-token{{- end -}}
{{- define "fleetpulse.agent.caDir" -}}/etc/fleetpulse/otlp-ca{{- end -}}
{{- define "fleetpulse.agent.clientCertDir" -}}/etc/fleetpulse/otlp-client{{- end -}}
{{- define "fleetpulse.agent.bufferDir" -}}/var/lib/fleetpulse/buffer{{- end -}}
{{- define "fleetpulse.collector.configPath" -}}/etc/fleetpulse/collector.yaml{{- end -}}
{{- define "fleetpulse.collector.dataDir" -}}/var/lib/fleetpulse{{- end -}}
{{- define "fleetpulse.collector.authDir" -}}/etc/fleetpulse/auth{{- end -}}
{{- define "fleetpulse.collector.tlsDir" -}}/etc/fleetpulse/tls{{- end -}}

{{/* Secrets: the name each consumer reads, whether the chart makes it or the user brings it. */}}
{{- define "fleetpulse.agent.tokenSecret" -}}
{{- default (include "fleetpulse.componentName" (list . "agent-token")) .Values.agent.otlp.existingSecret -}}
{{- end -}}
{{- define "fleetpulse.agent.tokenKey" -}}
{{- if .Values.agent.otlp.existingSecret }}{{ .Values.agent.otlp.existingSecretKey }}{{ else }}token{{ end -}}
{{- end -}}
{{- define "fleetpulse.collector.tokensSecret" -}}
{{- default (include "fleetpulse.componentName" (list . "collector-tokens")) .Values.collector.auth.existingSecret -}}
{{- end -}}
{{- define "fleetpulse.storage.dsnSecret" -}}
{{- default (include "fleetpulse.componentName" (list . "storage")) .Values.storage.external.existingSecret -}}
{{- end -}}
{{- define "fleetpulse.storage.dsnKey" -}}
{{- if .Values.storage.external.existingSecret }}{{ .Values.storage.external.existingSecretKey }}{{ else }}dsn{{ end -}}
{{- end -}}
{{- define "fleetpulse.chi.passwordSecret" -}}
{{- default (include "fleetpulse.componentName" (list . "clickhouse")) .Values.storage.clickhouseInstallation.existingSecret -}}
{{- end -}}
{{/* The agent sends a bearer token when one is given or the chart's collector requires tokens. */}}
{{- define "fleetpulse.agent.usesToken" -}}
{{- if or .Values.agent.otlp.token .Values.agent.otlp.existingSecret .Values.collector.enabled }}true{{ end -}}
{{- end -}}
{{- define "fleetpulse.agent.caSecret" -}}
{{- if .Values.agent.otlp.tls.caSecret }}{{ .Values.agent.otlp.tls.caSecret }}{{ else if .Values.collector.tls.enabled }}{{ .Values.collector.tls.secretName }}{{ end -}}
{{- end -}}

{{/* Storage wiring ----------------------------------------------------------------------------- */}}
{{- define "fleetpulse.chi.name" -}}
{{- default (include "fleetpulse.fullname" .) .Values.storage.clickhouseInstallation.name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{/* The Altinity operator's default Service for a CHI is clickhouse-<chi name>. */}}
{{- define "fleetpulse.chi.host" -}}
{{- printf "clickhouse-%s.%s.svc" (include "fleetpulse.chi.name" .) .Release.Namespace -}}
{{- end -}}
{{- define "fleetpulse.storage.cluster" -}}
{{- if eq .Values.storage.mode "clickhouseInstallation" -}}
{{- .Values.storage.clickhouseInstallation.cluster -}}
{{- else if eq .Values.storage.mode "external" -}}
{{- .Values.storage.external.cluster -}}
{{- end -}}
{{- end -}}

{{/* The collector Service the agents send to. */}}
{{- define "fleetpulse.collector.host" -}}
{{- printf "%s.%s.svc" (include "fleetpulse.componentName" (list . "collector")) .Release.Namespace -}}
{{- end -}}

{{- define "fleetpulse.agent.endpoint" -}}
{{- if .Values.agent.otlp.endpoint -}}
{{- .Values.agent.otlp.endpoint -}}
{{- else -}}
{{- $scheme := ternary "https" "http" .Values.collector.tls.enabled -}}
{{- $port := ternary .Values.collector.ports.grpc .Values.collector.ports.http (eq .Values.agent.otlp.protocol "grpc") -}}
{{- printf "%s://%s:%v" $scheme (include "fleetpulse.collector.host" .) $port -}}
{{- end -}}
{{- end -}}

{{/* Rendered configuration files ---------------------------------------------------------------- */}}
{{- define "fleetpulse.agent.config" -}}
{{- $a := .Values.agent -}}
{{- $root := include "fleetpulse.agent.hostRoot" . -}}
{{- $resource := dict -}}
{{- if .Values.clusterName }}{{- $_ := set $resource "k8s.cluster.name" .Values.clusterName -}}{{- end -}}
{{- $otlp := dict
  "endpoint" (include "fleetpulse.agent.endpoint" .)
  "protocol" $a.otlp.protocol
  "compression" $a.otlp.compression
  "timeout_s" $a.otlp.timeoutSeconds
  "insecure" (not (or .Values.collector.tls.enabled (hasPrefix "https://" (include "fleetpulse.agent.endpoint" .))))
-}}
{{- if include "fleetpulse.agent.usesToken" . -}}
{{- $_ := set $otlp "token_file" (printf "%s/token" (include "fleetpulse.agent.tokenDir" .)) -}}
{{- end -}}
{{- if include "fleetpulse.agent.caSecret" . -}}
{{- $_ := set $otlp "ca_file" (printf "%s/ca.crt" (include "fleetpulse.agent.caDir" .)) -}}
{{- end -}}
{{- if $a.otlp.tls.clientCertSecret -}}
{{- $_ := set $otlp "cert_file" (printf "%s/tls.crt" (include "fleetpulse.agent.clientCertDir" .)) -}}
{{- $_ := set $otlp "key_file" (printf "%s/tls.key" (include "fleetpulse.agent.clientCertDir" .)) -}}
{{- end -}}
{{- $chart := dict
  "roots" (dict "sysfs" (printf "%s/sys" $root) "procfs" (printf "%s/proc" $root) "kmsg" (printf "%s/dev/kmsg" $root))
  "prometheus_listen" (printf "0.0.0.0:%v" $a.metrics.port)
  "otlp" $otlp
  "buffer" (dict "dir" (include "fleetpulse.agent.bufferDir" .) "max_bytes" $a.buffer.maxBytes "max_age_s" $a.buffer.maxAgeSeconds)
  "placement" (dict "enabled" $a.placement.enabled)
-}}
{{- if $a.placement.enabled -}}
{{- $_ := set $chart.placement "kubelet_socket" (printf "%s/var/lib/kubelet/pod-resources/kubelet.sock" $root) -}}
{{- end -}}
{{- $config := mergeOverwrite (deepCopy $a.config) $chart -}}
{{- $_ := set $config "resource" (mergeOverwrite (deepCopy (default dict $a.config.resource)) $resource) -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "fleetpulse.collector.config" -}}
{{- $c := .Values.collector -}}
{{- $dataDir := include "fleetpulse.collector.dataDir" . -}}
{{- $storage := dict "database" .Values.storage.database "cluster" (include "fleetpulse.storage.cluster" .) -}}
{{- if eq .Values.storage.mode "embedded" -}}
{{- $_ := set $storage "dsn" (printf "chdb://%s/clickhouse" $dataDir) -}}
{{- end -}}
{{- $auth := dict "mode" "tokens" "tokens_file" (printf "%s/tokens.yaml" (include "fleetpulse.collector.authDir" .)) -}}
{{- $tls := dict "cert_file" nil "key_file" nil "client_ca_file" nil -}}
{{- if $c.tls.enabled -}}
{{- $dir := include "fleetpulse.collector.tlsDir" . -}}
{{- $_ := set $tls "cert_file" (printf "%s/tls.crt" $dir) -}}
{{- $_ := set $tls "key_file" (printf "%s/tls.key" $dir) -}}
{{- if $c.tls.clientAuth }}{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" $dir) -}}{{- end -}}
{{- end -}}
{{- $chart := dict
  "data_dir" $dataDir
  "storage" $storage
  "otlp" (dict "grpc_listen" (printf "0.0.0.0:%v" $c.ports.grpc) "http_listen" (printf "0.0.0.0:%v" $c.ports.http))
  "api" (dict "listen" (printf "0.0.0.0:%v" $c.ports.api))
  "auth" $auth
  "tls" $tls
-}}
{{- toYaml (mergeOverwrite (deepCopy $c.config) $chart) -}}
{{- end -}}

{{/* Checks that the schema cannot express; each names the value to change. ----------------------- */}}
{{- define "fleetpulse.validate" -}}
{{- $mode := .Values.storage.mode -}}
{{- $c := .Values.collector -}}
{{- if and (eq $mode "embedded") (or (gt (int $c.replicas) 1) $c.autoscaling.enabled) -}}
{{- fail "storage.mode=embedded keeps chDB inside one collector pod: set collector.replicas=1 and collector.autoscaling.enabled=false, or use storage.mode=external / clickhouseInstallation to scale out" -}}
{{- end -}}
{{- if and (eq $mode "external") (not (or .Values.storage.external.dsn .Values.storage.external.existingSecret)) -}}
{{- fail "storage.mode=external needs storage.external.dsn (http(s)://user:password@host:8123) or storage.external.existingSecret" -}}
{{- end -}}
{{- if and (eq $mode "external") .Values.storage.external.dsn (not (regexMatch "^https?://" .Values.storage.external.dsn)) -}}
{{- fail (printf "storage.external.dsn must start with http:// or https:// (a ClickHouse server), got %q" (regexReplaceAll ":[^:@/]*@" .Values.storage.external.dsn ":***@")) -}}
{{- end -}}
{{- $chi := .Values.storage.clickhouseInstallation -}}
{{- if and (eq $mode "clickhouseInstallation") (gt (int $chi.replicas) 1) (not $chi.zookeeper.nodes) -}}
{{- fail "storage.clickhouseInstallation.replicas > 1 needs ClickHouse Keeper/ZooKeeper: set storage.clickhouseInstallation.zookeeper.nodes ([{host: ..., port: 2181}])" -}}
{{- end -}}
{{- if and $c.tls.enabled (not $c.tls.secretName) -}}
{{- fail "collector.tls.enabled needs collector.tls.secretName (a kubernetes.io/tls Secret with tls.crt, tls.key and, for clientAuth, ca.crt)" -}}
{{- end -}}
{{- if and .Values.agent.enabled $c.enabled $c.auth.existingSecret (not (or .Values.agent.otlp.token .Values.agent.otlp.existingSecret)) -}}
{{- fail "collector.auth.existingSecret is set, so the chart cannot register a generated agent token: set agent.otlp.existingSecret (or agent.otlp.token) to a token listed in that Secret" -}}
{{- end -}}
{{- if and $c.autoscaling.enabled (lt (int $c.autoscaling.maxReplicas) (int $c.autoscaling.minReplicas)) -}}
{{- fail "collector.autoscaling.maxReplicas must be >= collector.autoscaling.minReplicas" -}}
{{- end -}}
{{- end -}}
