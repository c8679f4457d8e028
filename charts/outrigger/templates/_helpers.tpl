{{/* Names and labels shared by every template. */}}

{{- define "outrigger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "outrigger.fullname" -}}
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

{{- define "outrigger.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "outrigger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "outrigger.controlSelector" -}}
app.kubernetes.io/name: {{ include "outrigger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control
{{- end -}}

{{- define "outrigger.injectorSelector" -}}
{{- if eq .Values.injector.mode "embedded" -}}
{{ include "outrigger.controlSelector" . }}
{{- else -}}
app.kubernetes.io/name: {{ include "outrigger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: injector
{{- end -}}
{{- end -}}

{{- define "outrigger.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "outrigger.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "outrigger.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "outrigger.controlService" -}}
{{- printf "%s-control" (include "outrigger.fullname" .) -}}
{{- end -}}

{{- define "outrigger.injectorService" -}}
{{- printf "%s-injector" (include "outrigger.fullname" .) -}}
{{- end -}}

{{- define "outrigger.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "outrigger.fullname" .) -}}
{{- end -}}

{{- define "outrigger.tokenSecret" -}}
{{- default (printf "%s-control-token" (include "outrigger.fullname" .)) .Values.control.existingTokenSecret -}}
{{- end -}}

{{/*
The mesh config the injector reads: defaults for this release (image, control
Service, the webhook's excluded namespaces as a second line of defence), then
values.meshConfig.
*/}}
{{- define "outrigger.meshConfig" -}}
{{- $defaults := dict
  "proxyImage" (include "outrigger.image" .)
  "imagePullPolicy" .Values.image.pullPolicy
  "controlPlaneAddress" (printf "%s.%s.svc:%d" (include "outrigger.controlService" .) .Release.Namespace (int .Values.control.port))
  "ignoredNamespaces" (uniq (append (.Values.webhook.excludedNamespaces | default list) .Release.Namespace)) -}}
{{- if .Values.control.tls.secret }}
{{- $_ := set $defaults "controlPlaneCaBundle" (required "control.tls.caBundle: the PEM of the CA that signed control.tls.secret (injected sidecars verify the control plane with it)" .Values.control.tls.caBundle) -}}
{{- end }}
{{- toYaml (merge (deepCopy .Values.meshConfig) $defaults) -}}
{{- end -}}

{{/* Security context of the chart's own containers. */}}
{{- define "outrigger.containerSecurityContext" -}}
runAsUser: 10001
runAsGroup: 10001
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The injector container (in the control pod or its own Deployment). */}}
{{- define "outrigger.injectorContainer" -}}
- name: injector
  image: {{ include "outrigger.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - injector
    - --tls-cert
    - /etc/outrigger/webhook-tls/tls.crt
    - --tls-key
    - /etc/outrigger/webhook-tls/tls.key
    - --port
    - {{ .Values.injector.port | quote }}
    - --mesh-config
    - /etc/outrigger/mesh/mesh.yaml
  ports:
    - name: https-webhook
      containerPort: {{ .Values.injector.port }}
      protocol: TCP
  readinessProbe:
    httpGet: { path: /healthz, port: https-webhook, scheme: HTTPS }
    periodSeconds: 5
  livenessProbe:
    httpGet: { path: /healthz, port: https-webhook, scheme: HTTPS }
    periodSeconds: 10
    failureThreshold: 6
  resources:
    {{- toYaml .Values.injector.resources | nindent 4 }}
  securityContext:
    {{- include "outrigger.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: webhook-tls
      mountPath: /etc/outrigger/webhook-tls
      readOnly: true
    - name: mesh-config
      mountPath: /etc/outrigger/mesh
      readOnly: true
{{- end -}}

{{- define "outrigger.injectorVolumes" -}}
- name: webhook-tls
  secret:
    secretName: {{ include "outrigger.webhookSecret" . }}
- name: mesh-config
  configMap:
    name: {{ include "outrigger.fullname" . }}-mesh
{{- end -}}
