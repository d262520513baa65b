# pg-swarm-backup: build, ship and operate the Swarm stack, and run the local checks.
# `make` alone lists the targets. Override any variable on the command line:
#   make update VERSION=1.2.0      make logs SERVICE=backup-full      make deploy STACK=db
VERSION ?= $(shell cat VERSION)
REGISTRY ?= registry.local
STACK ?= pgsb
SERVICE ?= postgres
# Extra `docker build` arguments, e.g. BUILD_ARGS="--build-arg BACKUP_UID=1001"
BUILD_ARGS ?=
# Command run by `make shell` inside the postgres container.
EXEC ?= sh

POSTGRES_IMAGE := $(REGISTRY)/pg-swarm-backup-postgres
TASK_IMAGE := $(REGISTRY)/pg-swarm-backup-task
TASK_SERVICES := backup-full backup-differential backup-incremental backup-base cleanup verify auto-restore wal-receive
STACK_FILE := stack/docker-compose.swarm.yml
# Signed by default: make deploy creates the key pair on first deploy (stack/signing-keys.sh) and
# layers stack/docker-compose.signing.yml; SIGNING=0 opts out (docs/security.md "Signing").
SIGNING ?= 1
# ENCRYPTION=1: encrypt backups with age (needs the age_recipients config and age_identity secret; docs/security.md "Encryption at rest").
ENCRYPTION ?=
# S3_BUCKET set (here or in the environment, with S3_ENDPOINT, S3_PREFIX, ...): the S3 mirror,
# stack/docker-compose.s3.yml layered, and the one-off tasks get the same settings (docs/s3.md).
S3_BUCKET ?=
# More compose files layered last, e.g. a site's own overrides (notification URLs, placement).
EXTRA_STACK_FILES ?=
# More `docker stack deploy` arguments, e.g. --resolve-image never.
DEPLOY_ARGS ?=
signed := $(filter-out 0,$(strip $(SIGNING)))
encrypted := $(filter-out 0,$(strip $(ENCRYPTION)))
STACK_FILES := -c $(STACK_FILE)$(if $(signed), -c stack/docker-compose.signing.yml)$(if $(encrypted), -c stack/docker-compose.encryption.yml)$(if $(strip $(S3_BUCKET)), -c stack/docker-compose.s3.yml)$(foreach f,$(EXTRA_STACK_FILES), -c $(f))
RUN_TASK := IMAGE=$(TASK_IMAGE):$(VERSION) bash stack/swarm-run-task.sh

# The stack files read ${REGISTRY}, ${VERSION} and the S3_* settings from the environment,
# swarm-run-task.sh SIGNING, ENCRYPTION and S3_*.
export VERSION REGISTRY SIGNING ENCRYPTION S3_BUCKET

.DEFAULT_GOAL := help
.PHONY: help build push deploy update remove clean ps logs shell \
	backup-full backup-diff backup-incr backup-base backup-list verify backup-restore restore-pitr restore-pitr-clean \
	test test-pg17 e2e lint demo bench typecheck

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z0-9-]+:.*## / { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

build: ## Build both images, tagged VERSION and latest
	docker build -f Dockerfile.postgres --build-arg VERSION=$(VERSION) $(BUILD_ARGS) \
		-t $(POSTGRES_IMAGE):$(VERSION) -t $(POSTGRES_IMAGE):latest .
	docker build -f Dockerfile.task --build-arg VERSION=$(VERSION) $(BUILD_ARGS) \
		-t $(TASK_IMAGE):$(VERSION) -t $(TASK_IMAGE):latest .

push: ## Push both images (both tags) to REGISTRY
	docker push $(POSTGRES_IMAGE):$(VERSION)
	docker push $(POSTGRES_IMAGE):latest
	docker push $(TASK_IMAGE):$(VERSION)
	docker push $(TASK_IMAGE):latest

deploy: ## Deploy or update the stack STACK with images VERSION, signed (SIGNING=0 opts out)
ifeq ($(signed),)
ifneq ($(encrypted),)
	@echo 'deploy: ENCRYPTION=1 with SIGNING=0 is refused: age keeps backups secret but anyone with the public key can make a valid encrypted file, and only a signature proves who wrote it (docs/security.md "Encryption at rest"). Deploy with signing (the default).' >&2
	@exit 2
endif
	@echo 'deploy: SIGNING=0: backups are neither signed nor checked. Anyone who can write the storage box or the bucket can then plant a backup whose SQL runs as the superuser when it is restored, by restore-latest or unattended by auto-restore (docs/security.md "Threat model"); ENCRYPTION=1 is refused.' >&2
else
	bash stack/signing-keys.sh
endif
	docker stack deploy $(STACK_FILES) --with-registry-auth $(DEPLOY_ARGS) $(STACK)

update: ## Build, push and roll out VERSION=... to postgres and every task service
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory push
	docker service update --with-registry-auth --image $(POSTGRES_IMAGE):$(VERSION) $(STACK)_postgres
	for svc in $(TASK_SERVICES); do \
		docker service update --with-registry-auth --image $(TASK_IMAGE):$(VERSION) $(STACK)_$$svc || exit 1; \
	done

remove: ## Remove the stack (the data volume and the backups stay)
	docker stack rm $(STACK)

clean: ## Remove the local images, dist/ and node_modules/
	-docker image rm $(POSTGRES_IMAGE):$(VERSION) $(POSTGRES_IMAGE):latest \
		$(TASK_IMAGE):$(VERSION) $(TASK_IMAGE):latest
	rm -rf dist node_modules

ps: ## Show the stack's tasks
	docker stack ps $(STACK)

logs: ## Follow a service's logs (SERVICE=postgres)
	docker service logs -f $(STACK)_$(SERVICE)

shell: ## Open a shell (EXEC=sh) in the postgres container on this node
	@cid=$$(docker ps -q -f name=$(STACK)_postgres | head -n 1); \
	if [ -z "$$cid" ]; then \
		echo "no running $(STACK)_postgres container on this node; run this on the node labelled database=true" >&2; \
		exit 1; \
	fi; \
	docker exec -it $$cid $(EXEC)

backup-full: ## Run a full backup now, as a one-off Swarm job
	$(RUN_TASK) backup-full -- backup full

backup-diff: ## Run a differential backup now
	$(RUN_TASK) backup-diff -- backup differential

backup-incr: ## Run an incremental backup now
	$(RUN_TASK) backup-incr -- backup incremental

backup-base: ## Run a physical base backup now (point-in-time recovery)
	$(RUN_TASK) backup-base -- backup base

backup-list: ## List the backups
	$(RUN_TASK) backup-list -- list

verify: ## Prove the backups restore now: verify --restore as a one-off Swarm job (exit 5 on a problem)
	$(RUN_TASK) verify -- verify --restore

backup-restore: ## Run a restore: make backup-restore ARGS="restore-database FILE DB"
ifeq ($(strip $(ARGS)),)
	@echo 'usage: make backup-restore ARGS="restore-latest | restore-full FILE | restore-database FILE DB | list-databases FILE"' >&2
	@exit 2
endif
	$(RUN_TASK) backup-restore -- $(ARGS)

# TRUST_UNSIGNED=1 (with SIGNING=0 only): restore an unsigned base backup whose configuration runs
# commands or loads code (restore-pitr --trust-unsigned; docs/pitr.md "Restoring to a point in time").
TRUST_UNSIGNED ?=
restore-pitr: ## Point-in-time recovery of the Swarm's postgres: make restore-pitr [AT=2024-01-10T12:00:00Z] [DRY_RUN=1] [TRUST_UNSIGNED=1] [SOURCE=s3]
	STACK=$(STACK) IMAGE=$(TASK_IMAGE):$(VERSION) TRUST_UNSIGNED=$(TRUST_UNSIGNED) bash stack/swarm-restore-pitr.sh $(if $(AT),--at $(AT)) $(if $(DRY_RUN),--dry-run) $(if $(SOURCE),--source $(SOURCE))

restore-pitr-clean: ## After make restore-pitr, once the restored cluster is checked: delete the old data directory it moved aside in the volume
	STACK=$(STACK) PG_IMAGE=$(POSTGRES_IMAGE):$(VERSION) bash stack/swarm-restore-pitr.sh --remove-moved-aside

test: ## Install what the tests need, then run every test
	bash scripts/setup.sh
	npm test

e2e: ## As root: build both images and run the stack on a real two-node Swarm (test/e2e/run.sh)
	bash test/e2e/run.sh

# The integration test files test-pg17 runs; empty: the restore, auto-restore, verify, encryption and signing tests.
TEST_PG17_FILES ?=
test-pg17: ## As root: integration tests (TEST_PG17_FILES) inside the e2e's Debian trixie image with PostgreSQL 17
	bash scripts/setup.sh
	bash scripts/test-pg17.sh $(TEST_PG17_FILES)

lint: ## Lint the TypeScript and shellcheck every shell script
	bash scripts/setup.sh
	npm run lint
	find scripts stack test/e2e .ci -type f -name '*.sh' -exec shellcheck {} +

demo: ## Run the local demo
	bash scripts/setup.sh
	bash scripts/demo.sh

bench: ## Run the benchmark (BENCH_ARGS=...)
	bash scripts/setup.sh
	npm run bench -- $(BENCH_ARGS)

typecheck: ## Type-check without emitting
	npm run typecheck
