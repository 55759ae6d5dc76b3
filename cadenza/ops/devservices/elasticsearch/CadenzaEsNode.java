// Starts one Elasticsearch node inside this JVM from the jars Maven resolved.
//
// Elastic publishes the server and the transport-netty4 module to Maven Central but not the
// distribution's launcher, so this class does the little the launcher does for a test node:
// read config/elasticsearch.yml, configure logging, load the modules directory and start a Node.
// The security manager, native memory locking and the keystore are deliberately left out.
// Usage: java --module-path HOME/lib --add-modules ALL-MODULE-PATH -cp DIR CadenzaEsNode HOME CONFIG_DIR
// HOME holds lib/, modules/ and plugins/ (read only); CONFIG_DIR holds elasticsearch.yml and log4j2.properties.

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

public final class CadenzaEsNode {
    private CadenzaEsNode() {}

    public static void main(String[] args) throws Exception {
        // Elasticsearch's own logging facade must be wired before any server class logs or loads x-content.
        LogConfigurator.configureESLogging();
        LogConfigurator.registerErrorListener();
        Path home = Path.of(args[0]).toAbsolutePath();
        Path config = Path.of(args[1]).toAbsolutePath();
        Settings initial = Settings.builder()
            .loadFromPath(config.resolve("elasticsearch.yml"))
            .put("path.home", home.toString())
            .build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(initial, Map.of(), config, () -> "cadenza-dev");
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env, true);

        PluginsLoader loader = PluginsLoader.createPluginsLoader(
            PluginsLoader.loadModulesBundles(env.modulesDir()), Set.of(), Map.of());
        Node node = new Node(env, loader);
        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM runs shutdown hooks: close the node so Lucene files are released cleanly.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "cadenza-es-shutdown"));
        node.start();
        stopped.await();
    }
}
